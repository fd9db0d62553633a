using System.Text.Json;
using Converge.Protocol.Messages;

namespace Converge.Server.Http;

/// <summary>Reads a resolve body into a <see cref="ResolveConflictRequest"/>, saying what is wrong in the protocol's words.</summary>
/// <remarks>
/// The rules are the typed deserializer's: <c>choice</c> required (a string, or null), <c>fields</c> an object or null,
/// unknown members ignored, the last of a repeated member kept. The typed deserializer's refusals name .NET types
/// (<c>System.String</c>, <c>ResolveConflictRequest</c>), so the body is read here. The body's text was checked first
/// (<see cref="JsonText"/>), so reading its strings cannot fail.
/// </remarks>
internal static class ResolveReader
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = ProtocolLimits.MaxMessageDepth };

    /// <exception cref="JsonException">The body is not JSON, or (<see cref="MalformedMessageException"/>) not a resolution.</exception>
    public static ResolveConflictRequest? Read(ReadOnlySpan<byte> json)
    {
        var root = JsonElement.Parse(json, Options);
        if (root.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new MalformedMessageException("A resolution must be a JSON object.");
        }

        string? choice = null;
        var hasChoice = false;
        Dictionary<string, JsonElement>? fields = null;
        foreach (var member in root.EnumerateObject())
        {
            if (member.NameEquals("choice"u8))
            {
                choice = member.Value.ValueKind switch
                {
                    JsonValueKind.String => member.Value.GetString(),
                    JsonValueKind.Null => null,
                    _ => throw new MalformedMessageException("'choice' must be a string: server, client or edited."),
                };
                hasChoice = true;
            }
            else if (member.NameEquals("fields"u8))
            {
                fields = Fields(member.Value);
            }
        }

        return hasChoice
            ? new ResolveConflictRequest { Choice = choice!, Fields = fields }
            : throw new MalformedMessageException("A resolution must have 'choice': server, client or edited.");
    }

    private static Dictionary<string, JsonElement>? Fields(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new MalformedMessageException("'fields' must be an object: the chosen value of each field.");
        }

        var result = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            result[property.Name] = property.Value;
        }

        return result;
    }
}
