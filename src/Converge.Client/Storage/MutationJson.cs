using System.Buffers;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>Writes a <see cref="Mutation"/> as the protocol's JSON, byte for byte what <c>ProtocolJson.Mutation</c> writes, without the serializer's per-member machinery.</summary>
/// <remarks>
/// Every local write stores its mutation this way, and a push sends the stored text as it is. The object of the written
/// fields is written in one piece and its place in the output kept, so a put of a new document can store it as the
/// document's local value too instead of writing the same values again.
/// </remarks>
internal sealed class MutationJson
{
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly Utf8JsonWriter _writer;
    private int _fieldsStart = -1;
    private int _fieldsEnd = -1;

    public MutationJson() => _writer = new Utf8JsonWriter(_buffer);

    /// <summary>Gets the last mutation written, valid until the next write.</summary>
    public ReadOnlySpan<byte> Json => _buffer.WrittenSpan;

    /// <summary>Gets the JSON object of the last mutation's written fields; empty when it has none.</summary>
    public ReadOnlySpan<byte> Fields => _fieldsStart < 0 ? default : _buffer.WrittenSpan[_fieldsStart.._fieldsEnd];

    public void Write(Mutation mutation)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        _fieldsStart = _fieldsEnd = -1;
        var w = _writer;
        w.WriteStartObject();
        w.WriteNumber("id"u8, mutation.Id);
        w.WriteString("scope"u8, mutation.Scope);
        w.WriteString("collection"u8, mutation.Collection);
        w.WriteString("doc"u8, mutation.DocumentId);
        w.WriteString("op"u8, mutation.Kind switch
        {
            MutationKind.Put => "put"u8,
            MutationKind.Patch => "patch"u8,
            MutationKind.Delete => "delete"u8,
            MutationKind.Increment => "increment"u8,
            MutationKind.Resolve => "resolve"u8,
            _ => throw new ArgumentOutOfRangeException(nameof(mutation), mutation.Kind, "Not a mutation kind."),
        });
        Span<char> hlc = stackalloc char[HybridTimestamp.TextLength];
        mutation.Hlc.TryFormat(hlc, out _);
        w.WriteString("hlc"u8, hlc);
        w.WriteNumber("base"u8, mutation.BaseRevision);
        if (mutation.Fields is { } fields)
        {
            w.WritePropertyName("fields"u8);
            w.Flush();
            _fieldsStart = _buffer.WrittenCount;
            Values(w, fields);
            w.Flush();
            _fieldsEnd = _buffer.WrittenCount;
        }

        if (mutation.Remove is { } remove)
        {
            w.WriteStartArray("remove"u8);
            foreach (var name in remove)
            {
                w.WriteStringValue(name);
            }

            w.WriteEndArray();
        }

        if (mutation.BaseValues is { } baseValues)
        {
            w.WritePropertyName("baseValues"u8);
            Values(w, baseValues);
        }

        if (mutation.ConflictId is { } conflict)
        {
            w.WriteString("conflict"u8, conflict);
        }

        w.WriteEndObject();
        w.Flush();
    }

    private static void Values(Utf8JsonWriter w, IReadOnlyDictionary<string, JsonElement> values)
    {
        w.WriteStartObject();
        foreach (var (name, value) in values)
        {
            w.WritePropertyName(name);
            value.WriteTo(w);
        }

        w.WriteEndObject();
    }
}
