using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client.Storage;

namespace Converge.Client;

/// <summary>Turns the application's values into top-level document fields.</summary>
internal static class DocumentJson
{
    /// <summary>The fields of a JSON object.</summary>
    /// <param name="element">The object.</param>
    /// <param name="parameter">The parameter it came from, for the exception.</param>
    /// <param name="owned">Whether the element belongs to a document nobody disposes (made by the client itself), so its values can be kept without a copy.</param>
    public static JsonFields FieldsOf(JsonElement element, string parameter, bool owned = false)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"A document must serialize to a JSON object, not {element.ValueKind}.", parameter);
        }

        return JsonFields.FromObject(element, clone: !owned);
    }

    public static JsonFields FieldsOf(JsonObject node, string parameter)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            node.WriteTo(writer);
        }

        return FieldsOf(JsonElement.Parse(buffer.WrittenSpan), parameter, owned: true);
    }
}
