using System.Buffers;
using System.Text.Json;

namespace Converge.Client.Storage;

/// <summary>The top-level fields of a JSON object in their order: how the store holds a document's local value.</summary>
internal sealed class JsonFields : OrderedDictionary<string, JsonElement>
{
    public JsonFields()
        : base(StringComparer.Ordinal)
    {
    }

    public JsonFields(JsonFields other)
        : base(other, StringComparer.Ordinal)
    {
    }

    /// <summary>Reads an object's fields; the element must be a JSON object.</summary>
    public static JsonFields FromObject(JsonElement element)
    {
        var fields = new JsonFields();
        foreach (var property in element.EnumerateObject())
        {
            // A duplicate name keeps its last value, as System.Text.Json does when it reads an object into a type.
            fields[property.Name] = property.Value.Clone();
        }

        return fields;
    }

    /// <summary>Parses stored JSON text; <see langword="null"/> text means no value (a deleted document).</summary>
    public static JsonFields? Parse(string? json)
    {
        if (json is null)
        {
            return null;
        }

        using var document = JsonDocument.Parse(json);
        return FromObject(document.RootElement);
    }

    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public JsonElement ToElement()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteTo(writer);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var (name, value) in this)
        {
            writer.WritePropertyName(name);
            value.WriteTo(writer);
        }

        writer.WriteEndObject();
    }
}
