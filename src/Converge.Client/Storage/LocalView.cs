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
    public static LocalView FromStored(string? localValue, string? localTimestamps) =>
        new(JsonFields.Parse(localValue), localValue is null, ParseTimestamps(localTimestamps));

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

    public string? TimestampsJson()
    {
        if (Timestamps.Count == 0)
        {
            return null;
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, hlc) in Timestamps)
            {
                writer.WriteString(name, hlc.ToString());
            }

            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static readonly IReadOnlyDictionary<string, JsonElement> Empty = new Dictionary<string, JsonElement>();

    private static Dictionary<string, HybridTimestamp> ParseTimestamps(string? json)
    {
        var result = new Dictionary<string, HybridTimestamp>(StringComparer.Ordinal);
        if (json is null)
        {
            return result;
        }

        using var document = JsonDocument.Parse(json);
        foreach (var property in document.RootElement.EnumerateObject())
        {
            if (HybridTimestamp.TryParse(property.Value.GetString(), out var hlc))
            {
                result[property.Name] = hlc;
            }
        }

        return result;
    }
}
