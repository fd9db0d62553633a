using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Server.Http;

/// <summary>Reads a push body into a <see cref="PushRequest"/> whose values all point into one parsed copy of the body.</summary>
/// <remarks>
/// The typed deserializer gives every field value its own small JSON document; a push of a thousand documents makes
/// thousands of them. Here the body is parsed once, and the mutations' values are elements of that one document, which
/// the merge keeps as they are. The rules are the typed deserializer's: required members, member types, the strict
/// operation names (anything else goes to the protocol's own converter), unknown members ignored, the last of a repeated
/// member kept. Any breach throws <see cref="MalformedMessageException"/> (bad JSON: <see cref="JsonException"/>), which the
/// endpoint answers as <c>malformed</c>. The body's text was checked first (<see cref="JsonText"/>), so reading its strings
/// cannot fail.
/// </remarks>
internal static class PushReader
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = ProtocolLimits.MaxMessageDepth };

    private static readonly JsonTypeInfo<MutationKind> KindInfo = (JsonTypeInfo<MutationKind>)ProtocolJson.Options.GetTypeInfo(typeof(MutationKind));

    public static PushRequest? Read(ReadOnlySpan<byte> json)
    {
        var root = JsonElement.Parse(json, Options);
        if (root.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new MalformedMessageException("A push must be a JSON object.");
        }

        string? client = null;
        HybridTimestamp? clock = null;
        List<Mutation>? mutations = null;
        bool hasClient = false, hasMutations = false;
        foreach (var member in root.EnumerateObject())
        {
            if (member.NameEquals("client"u8))
            {
                client = String(member.Value, "client");
                hasClient = true;
            }
            else if (member.NameEquals("clock"u8))
            {
                clock = Timestamp(member.Value, "clock");
            }
            else if (member.NameEquals("mutations"u8))
            {
                mutations = Mutations(member.Value);
                hasMutations = true;
            }
        }

        if (!hasClient || clock is null || !hasMutations)
        {
            throw new MalformedMessageException("A push must have 'client', 'clock' and 'mutations'.");
        }

        return new PushRequest { ClientId = client!, Clock = clock.Value, Mutations = mutations! };
    }

    private static List<Mutation>? Mutations(JsonElement array)
    {
        if (array.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (array.ValueKind != JsonValueKind.Array)
        {
            throw Invalid("mutations");
        }

        var result = new List<Mutation>(array.GetArrayLength());
        foreach (var item in array.EnumerateArray())
        {
            result.Add(item.ValueKind switch
            {
                JsonValueKind.Object => Mutation(item),
                JsonValueKind.Null => null!,
                _ => throw Invalid("mutations"),
            });
        }

        return result;
    }

    private static Mutation Mutation(JsonElement item)
    {
        long? id = null;
        string? scope = null, collection = null, doc = null, conflict = null;
        bool hasScope = false, hasCollection = false, hasDoc = false;
        MutationKind? kind = null;
        HybridTimestamp? hlc = null;
        long baseRevision = 0;
        Dictionary<string, JsonElement>? fields = null, baseValues = null;
        List<string>? remove = null;
        foreach (var member in item.EnumerateObject())
        {
            var value = member.Value;
            if (member.NameEquals("id"u8))
            {
                id = Int64(value, "id");
            }
            else if (member.NameEquals("scope"u8))
            {
                scope = String(value, "scope");
                hasScope = true;
            }
            else if (member.NameEquals("collection"u8))
            {
                collection = String(value, "collection");
                hasCollection = true;
            }
            else if (member.NameEquals("doc"u8))
            {
                doc = String(value, "doc");
                hasDoc = true;
            }
            else if (member.NameEquals("op"u8))
            {
                kind = Kind(value);
            }
            else if (member.NameEquals("hlc"u8))
            {
                hlc = Timestamp(value, "hlc");
            }
            else if (member.NameEquals("base"u8))
            {
                baseRevision = Int64(value, "base");
            }
            else if (member.NameEquals("fields"u8))
            {
                fields = Values(value, "fields");
            }
            else if (member.NameEquals("remove"u8))
            {
                remove = Names(value);
            }
            else if (member.NameEquals("baseValues"u8))
            {
                baseValues = Values(value, "baseValues");
            }
            else if (member.NameEquals("conflict"u8))
            {
                conflict = String(value, "conflict");
            }
        }

        if (id is null || !hasScope || !hasCollection || !hasDoc || kind is null || hlc is null)
        {
            throw new MalformedMessageException("A mutation must have 'id', 'scope', 'collection', 'doc', 'op' and 'hlc'.");
        }

        return new Mutation
        {
            Id = id.Value,
            Scope = scope!,
            Collection = collection!,
            DocumentId = doc!,
            Kind = kind.Value,
            Hlc = hlc.Value,
            BaseRevision = baseRevision,
            Fields = fields,
            Remove = remove,
            BaseValues = baseValues,
            ConflictId = conflict,
        };
    }

    private static Dictionary<string, JsonElement>? Values(JsonElement value, string member)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(member);
        }

        var result = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            // Elements of the one parsed body: the merge's Clone of them copies nothing.
            result[property.Name] = property.Value;
        }

        return result;
    }

    private static List<string>? Names(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Invalid("remove");
        }

        var result = new List<string>(value.GetArrayLength());
        foreach (var item in value.EnumerateArray())
        {
            result.Add(String(item, "remove")!);
        }

        return result;
    }

    private static MutationKind Kind(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            if (value.ValueEquals("put"u8))
            {
                return MutationKind.Put;
            }

            if (value.ValueEquals("patch"u8))
            {
                return MutationKind.Patch;
            }

            if (value.ValueEquals("delete"u8))
            {
                return MutationKind.Delete;
            }

            if (value.ValueEquals("increment"u8))
            {
                return MutationKind.Increment;
            }

            if (value.ValueEquals("resolve"u8))
            {
                return MutationKind.Resolve;
            }
        }

        // Anything else is decided by the protocol's own converter, exactly as the typed deserializer would; its refusal
        // names .NET types, so it is said again in the protocol's words.
        try
        {
            return value.Deserialize(KindInfo);
        }
        catch (JsonException)
        {
            throw new MalformedMessageException("'op' must be one of put, patch, delete, increment, resolve.");
        }
    }

    private static string? String(JsonElement value, string member) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null => null,
        _ => throw Invalid(member),
    };

    private static long Int64(JsonElement value, string member) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : throw Invalid(member);

    private static HybridTimestamp Timestamp(JsonElement value, string member)
    {
        // The protocol's converter takes exactly 34 unescaped characters; the raw value here includes its quotes.
        var raw = JsonMarshal.GetRawUtf8Value(value);
        if (value.ValueKind != JsonValueKind.String || raw.Length != HybridTimestamp.TextLength + 2)
        {
            throw Invalid(member);
        }

        Span<char> text = stackalloc char[HybridTimestamp.TextLength];
        for (var i = 0; i < text.Length; i++)
        {
            text[i] = (char)raw[i + 1];
        }

        return HybridTimestamp.TryParse(text, out var timestamp) ? timestamp : throw Invalid(member);
    }

    private static MalformedMessageException Invalid(string member) => new($"'{member}' has the wrong type or form.");
}
