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
    /// <param name="element">The object.</param>
    /// <param name="clone">Whether to copy the values, for an element whose document will be disposed; an element of a document nobody disposes (from <see cref="JsonElement.Parse(string, JsonDocumentOptions)"/> or <c>SerializeToElement</c>) is safe to share.</param>
    public static JsonFields FromObject(JsonElement element, bool clone = true)
    {
        var fields = new JsonFields();
        foreach (var property in element.EnumerateObject())
        {
            // A duplicate name keeps its last value, as System.Text.Json does when it reads an object into a type.
            fields[property.Name] = clone ? property.Value.Clone() : property.Value;
        }

        return fields;
    }

    /// <summary>Parses stored JSON text; <see langword="null"/> text means no value (a deleted document).</summary>
    public static JsonFields? Parse(string? json) => json is null ? null : FromObject(JsonElement.Parse(json), clone: false);

    public string ToJson()
    {
        var buffer = Buffer;
        buffer.ResetWrittenCount();
        var writer = Writer(buffer);
        WriteTo(writer);
        writer.Flush();
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>A writer buffer per thread, reused: documents are serialized one at a time on each thread.</summary>
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    internal static ArrayBufferWriter<byte> Buffer => t_buffer ??= new ArrayBufferWriter<byte>(1024);

    /// <summary>The thread's writer, reset onto <paramref name="buffer"/>.</summary>
    internal static Utf8JsonWriter Writer(ArrayBufferWriter<byte> buffer)
    {
        if (t_writer is { } writer)
        {
            writer.Reset(buffer);
            return writer;
        }

        return t_writer = new Utf8JsonWriter(buffer);
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
