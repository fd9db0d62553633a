using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client.Storage;

namespace Converge.Client;

/// <summary>Turns the application's values into top-level document fields.</summary>
internal static class DocumentJson
{
    public static JsonFields FieldsOf(JsonElement element, string parameter)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"A document must serialize to a JSON object, not {element.ValueKind}.", parameter);
        }

        return JsonFields.FromObject(element);
    }

    public static JsonFields FieldsOf(JsonObject node, string parameter)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            node.WriteTo(writer);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return FieldsOf(document.RootElement, parameter);
    }
}
