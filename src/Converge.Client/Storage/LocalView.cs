using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>A document as the application sees it: the server's state with the client's pending mutations applied on top.</summary>
/// <remarks>
/// Pending mutations are laid over the server state as written, without the server's conflict rules: until the server
/// answers, the user's own edits are what the user sees (they never flicker away). The server's verdict arrives with the
/// next pull, which rebuilds the view from the new server state and whatever is still pending.
/// </remarks>
internal sealed class LocalView
{
    private LocalView(JsonFields? value, bool tombstone, Dictionary<string, HybridTimestamp> timestamps)
    {
        Value = value;
        Tombstone = tombstone;
        Timestamps = timestamps;
    }

    /// <summary>Gets the live value; <see langword="null"/> when the document is deleted or does not exist.</summary>
    public JsonFields? Value { get; private set; }

    /// <summary>Gets a value indicating whether the document is deleted (as opposed to never written).</summary>
    public bool Tombstone { get; private set; }

    /// <summary>Gets the timestamp of the last write of each field the view knows, removed fields included.</summary>
    public Dictionary<string, HybridTimestamp> Timestamps { get; }

    /// <summary>Gets the view of a stored row.</summary>
    /// <remarks>
    /// A row whose <c>local_hlc</c> is NULL has the timestamps of its server state (nothing was written locally since the
    /// state arrived); one whose <c>local_hlc</c> is a single timestamp has it for every field of its value.
    /// </remarks>
    public static LocalView FromStored(DocumentRow row)
    {
        var value = JsonFields.Parse(row.LocalValue);
        Dictionary<string, HybridTimestamp> timestamps;
        if (row.LocalTimestamps is { } stored)
        {
            timestamps = ParseTimestamps(stored, value);
        }
        else
        {
            timestamps = new Dictionary<string, HybridTimestamp>(StringComparer.Ordinal);
            foreach (var (name, field) in row.ServerState?.Fields ?? EmptyState)
            {
                timestamps[name] = field.Hlc;
            }
        }

        return new LocalView(value, row.LocalValue is null, timestamps);
    }

    /// <summary>Builds the view from a server state and the pending mutations of the document, in outbox order.</summary>
    public static LocalView Rebuild(DocumentState? server, IEnumerable<Mutation> pending)
    {
        var timestamps = new Dictionary<string, HybridTimestamp>(StringComparer.Ordinal);
        JsonFields? value = null;
        if (server is not null)
        {
            foreach (var (name, field) in server.Fields)
            {
                timestamps[name] = field.Hlc;
            }

            if (!server.Deleted)
            {
                value = new JsonFields();
                foreach (var (name, field) in server.Fields)
                {
                    if (!field.Removed)
                    {
                        value[name] = field.Value;
                    }
                }
            }
        }

        var view = new LocalView(value, server is { Deleted: true }, timestamps);
        foreach (var mutation in pending)
        {
            view.Apply(mutation);
        }

        return view;
    }

    /// <summary>Lays a mutation over the view.</summary>
    /// <remarks>
    /// A put replaces the value (and revives a deleted document); a patch, resolve or increment of a deleted document
    /// leaves it deleted, as the server discards them under its default delete rule; of a document that never existed,
    /// it creates it. An increment adds to a number and starts a missing or non-number field at the amount.
    /// </remarks>
    public void Apply(Mutation mutation)
    {
        switch (mutation.Kind)
        {
            case MutationKind.Delete:
                Value = null;
                Tombstone = true;
                return;
            case MutationKind.Put:
                Value = new JsonFields();
                Tombstone = false;
                break;
            default:
                if (Value is null)
                {
                    if (Tombstone)
                    {
                        return;
                    }

                    Value = new JsonFields();
                }

                break;
        }

        foreach (var (name, element) in mutation.Fields ?? Empty)
        {
            if (mutation.Kind == MutationKind.Increment)
            {
                // An increment that would overflow is rejected by the server: the view keeps the field as it is.
                if (DocumentMerge.TryAddNumbers(Value.TryGetValue(name, out var current) ? current : null, element, out var sum))
                {
                    Value[name] = sum;
                }
            }
            else
            {
                Value[name] = element;
            }

            Timestamps[name] = mutation.Hlc;
        }

        foreach (var name in mutation.Remove ?? [])
        {
            Value.Remove(name);
            Timestamps[name] = mutation.Hlc;
        }
    }

    /// <summary>The timestamps as stored in <c>local_hlc</c>: one JSON string when every field of the value has the same one and no removed field has any (a new document, say); otherwise an object of each field's.</summary>
    public string? TimestampsJson()
    {
        if (Timestamps.Count == 0)
        {
            return null;
        }

        Span<char> text = stackalloc char[HybridTimestamp.TextLength];
        HybridTimestamp? uniform = null;
        if (Value is not null && Value.Count == Timestamps.Count)
        {
            foreach (var (_, hlc) in Timestamps)
            {
                if (uniform is null)
                {
                    uniform = hlc;
                }
                else if (hlc != uniform)
                {
                    uniform = null;
                    break;
                }
            }
        }

        if (uniform is { } one)
        {
            one.TryFormat(text, out _);
            return string.Concat("\"", text, "\"");
        }

        var buffer = JsonFields.Buffer;
        buffer.ResetWrittenCount();
        var writer = JsonFields.Writer(buffer);
        writer.WriteStartObject();
        HybridTimestamp last = default;
        var formatted = 0;
        foreach (var (name, hlc) in Timestamps)
        {
            // The fields of one write share its timestamp: format it once.
            if (formatted == 0 || hlc != last)
            {
                hlc.TryFormat(text, out formatted);
                last = hlc;
            }

            writer.WriteString(name, text[..formatted]);
        }

        writer.WriteEndObject();
        writer.Flush();
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static readonly IReadOnlyDictionary<string, JsonElement> Empty = new Dictionary<string, JsonElement>();

    private static readonly IReadOnlyDictionary<string, FieldState> EmptyState = new Dictionary<string, FieldState>();

    private static Dictionary<string, HybridTimestamp> ParseTimestamps(string json, JsonFields? value)
    {
        var result = new Dictionary<string, HybridTimestamp>(StringComparer.Ordinal);
        Span<char> text = stackalloc char[HybridTimestamp.TextLength];
        if (json.Length == HybridTimestamp.TextLength + 2 && json[0] == '"')
        {
            // One timestamp for every field of the value.
            if (value is not null && HybridTimestamp.TryParse(json.AsSpan(1, HybridTimestamp.TextLength), out var all))
            {
                foreach (var (field, _) in value)
                {
                    result[field] = all;
                }
            }

            return result;
        }

        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        var reader = new Utf8JsonReader(bytes);
        string? name = null;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    name = reader.GetString();
                    break;
                case JsonTokenType.String when name is not null && reader.CurrentDepth == 1:
                    if (!reader.ValueIsEscaped && reader.ValueSpan.Length == HybridTimestamp.TextLength
                        && HybridTimestamp.TryParse(text[..reader.CopyString(text)], out var hlc))
                    {
                        result[name] = hlc;
                    }

                    break;
            }
        }

        return result;
    }
}
