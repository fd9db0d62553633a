using System.IO.Pipelines;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Storage;

namespace Converge.Server.Engine;

/// <summary>A pull page as the engine answers it: the protocol's <see cref="PullResponse"/>, with the documents' states either built or as stored JSON.</summary>
internal sealed class PullPage
{
    private const int FlushBytes = 64 * 1024;

    public required string Scope { get; init; }

    public required long Cursor { get; init; }

    public bool HasMore { get; init; }

    public bool Reset { get; init; }

    public required HybridTimestamp Clock { get; init; }

    /// <summary>Gets the store's epoch, written when set (see <see cref="PullResponse.Epoch"/>).</summary>
    public string? Epoch { get; init; }

    /// <summary>Gets the documents as a store built them, when it cannot give their JSON.</summary>
    public IReadOnlyList<DocumentChange>? Documents { get; init; }

    /// <summary>Gets the documents with their states as stored JSON.</summary>
    public RawChangePage? Raw { get; init; }

    /// <summary>Gets the conflict records as a store built them, when it cannot give their JSON (otherwise they are in <see cref="Raw"/>).</summary>
    public IReadOnlyList<ConflictRecord>? Conflicts { get; init; }

    public int DocumentCount => Raw?.Documents.Count ?? Documents?.Count ?? 0;

    /// <summary>Gets about how many bytes the page's JSON takes, at least as many as it will, found without writing it.</summary>
    /// <remarks>
    /// Stored JSON is counted as it is; a built state or record is counted from its values' JSON text (kept by the parsed
    /// push, so reading its length costs nothing) plus a bound on what each field and item adds around it.
    /// </remarks>
    public long EstimateBytes()
    {
        const int PerItem = 256; // keys, revision, status and punctuation around one document or record
        long bytes = 256 + Scope.Length + (Epoch?.Length ?? 0);
        if (Raw is { } raw)
        {
            foreach (var document in raw.Documents)
            {
                bytes += PerItem + (3L * (document.Collection.Length + document.Id.Length)) + document.State.Length;
            }

            foreach (var conflict in raw.Conflicts)
            {
                bytes += conflict.Record.Length;
            }
        }
        else
        {
            foreach (var change in Documents ?? [])
            {
                bytes += PerItem + (3L * (change.Collection.Length + change.DocumentId.Length)) + Estimate(change.State.Fields.Values, change.State.Fields.Keys);
            }
        }

        foreach (var conflict in Conflicts ?? [])
        {
            bytes += PerItem + (3L * (conflict.Id.Length + conflict.Scope.Length + conflict.Collection.Length + conflict.DocumentId.Length + conflict.ClientId.Length));
            foreach (var field in conflict.Fields)
            {
                bytes += PerField + (3L * field.Name.Length) + Estimate(field.Server) + Estimate(field.Client) + (field.Base is { } value ? Length(value) : 0);
            }
        }

        return bytes;
    }

    // A field's timestamp (34 characters), writer and revision (20 digits each), flags and punctuation, besides its name and value.
    private const int PerField = 128;

    private static long Estimate(IEnumerable<FieldState> fields, IEnumerable<string> names)
    {
        long bytes = 0;
        foreach (var field in fields)
        {
            bytes += Estimate(field);
        }

        foreach (var name in names)
        {
            // Written escaped in the worst case: each character as up to six bytes (\uXXXX), but names are short.
            bytes += 6L * name.Length;
        }

        return bytes;
    }

    private static long Estimate(FieldState field) => PerField + Length(field.Value);

    /// <summary>At least the length of a value's JSON as the serializer writes it again, from its JSON text as parsed.</summary>
    /// <remarks>
    /// The serializer escapes every byte outside printable ASCII, and a few inside it, as <c>\uXXXX</c>: counting six
    /// bytes for each of those bounds the output from above, whatever the text's own escaping was.
    /// </remarks>
    private static long Length(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Undefined)
        {
            return 4;
        }

        var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(value);
        long length = raw.Length;
        int index;
        while ((index = raw.IndexOfAnyExcept(Plain)) >= 0)
        {
            length += 5;
            raw = raw[(index + 1)..];
        }

        return length;
    }

    /// <summary>The bytes the serializer writes as they are.</summary>
    private static readonly System.Buffers.SearchValues<byte> Plain = System.Buffers.SearchValues.Create(
        " !#$%()*,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~"u8);

    /// <summary>Writes the page as the JSON of a <see cref="PullResponse"/>, members in the same order, stored states copied as they are.</summary>
    public async Task WriteAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        var writer = new Utf8JsonWriter(output);
        await using (writer.ConfigureAwait(false))
        {
            WriteStart(writer);
            var count = DocumentCount;
            for (var i = 0; i < count; i++)
            {
                WriteChange(writer, i);
                if (writer.BytesPending >= FlushBytes)
                {
                    // Hand what is written to the connection as it goes, so the page's JSON never sits whole in memory.
                    writer.Flush();
                    await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            WriteEnd(writer);
            writer.Flush();
        }

        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the page as the JSON value of a <see cref="PullResponse"/>, whole, into a writer (for a live message, which is bounded).</summary>
    public void Write(Utf8JsonWriter writer)
    {
        WriteStart(writer);
        var count = DocumentCount;
        for (var i = 0; i < count; i++)
        {
            WriteChange(writer, i);
        }

        WriteEnd(writer);
    }

    private void WriteStart(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("scope"u8, Scope);
        writer.WriteNumber("cursor"u8, Cursor);
        writer.WriteBoolean("hasMore"u8, HasMore);
        if (Reset)
        {
            writer.WriteBoolean("reset"u8, true);
        }

        Span<char> clock = stackalloc char[HybridTimestamp.TextLength];
        Clock.TryFormat(clock, out _);
        writer.WriteString("clock"u8, clock);
        if (Epoch is not null)
        {
            writer.WriteString("epoch"u8, Epoch);
        }

        writer.WriteStartArray("changes"u8);
    }

    private void WriteChange(Utf8JsonWriter writer, int index)
    {
        writer.WriteStartObject();
        if (Raw is { } raw)
        {
            var document = raw.Documents[index];
            writer.WriteString("collection"u8, document.Collection);
            writer.WriteString("id"u8, document.Id);
            writer.WritePropertyName("state"u8);
            writer.WriteRawValue(document.State.Span, skipInputValidation: true);
        }
        else
        {
            var change = Documents![index];
            writer.WriteString("collection"u8, change.Collection);
            writer.WriteString("id"u8, change.DocumentId);
            writer.WritePropertyName("state"u8);
            JsonSerializer.Serialize(writer, change.State, ProtocolJson.DocumentState);
        }

        writer.WriteEndObject();
    }

    private void WriteEnd(Utf8JsonWriter writer)
    {
        writer.WriteEndArray();
        if (Raw is { Conflicts.Count: > 0 } rawPage)
        {
            writer.WriteStartArray("conflicts"u8);
            foreach (var conflict in rawPage.Conflicts)
            {
                writer.WriteRawValue(conflict.Record.Span, skipInputValidation: true);
            }

            writer.WriteEndArray();
        }
        else if (Conflicts is { Count: > 0 })
        {
            writer.WritePropertyName("conflicts"u8);
            JsonSerializer.Serialize(writer, Conflicts, ProtocolJson.ConflictRecords);
        }

        writer.WriteEndObject();
    }
}
