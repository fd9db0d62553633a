using System.Text.Json;
using System.Text.Json.Serialization;

namespace Converge.Protocol.Json;

/// <summary>Reads and writes a <see cref="HybridTimestamp"/> as its 34-character text form.</summary>
public sealed class HybridTimestampJsonConverter : JsonConverter<HybridTimestamp>
{
    private const string Expected = "A timestamp must be a string in the form pppppppppppp-cccc-nnnnnnnnnnnnnnnn (lowercase hex).";

    /// <inheritdoc/>
    public override HybridTimestamp Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length != HybridTimestamp.TextLength || reader.ValueIsEscaped)
        {
            throw new JsonException(Expected);
        }

        Span<char> buffer = stackalloc char[HybridTimestamp.TextLength];
        var length = reader.CopyString(buffer);
        return HybridTimestamp.TryParse(buffer[..length], out var timestamp) ? timestamp : throw new JsonException(Expected);
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, HybridTimestamp value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<char> buffer = stackalloc char[HybridTimestamp.TextLength];
        value.TryFormat(buffer, out var written);
        writer.WriteStringValue(buffer[..written]);
    }
}
