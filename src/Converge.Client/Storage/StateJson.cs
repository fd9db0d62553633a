using System.Text;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>What the store keeps of a server state when no local write is pending: its revision and the local value it gives.</summary>
/// <param name="Revision">The state's revision.</param>
/// <param name="LocalValue">The live fields' values as a JSON object; <see langword="null"/> when the document is deleted.</param>
internal readonly record struct StateSummary(long Revision, string? LocalValue);

/// <summary>Reads a <c>DocumentState</c> as the server sent it, without building it: the revision and the local value in one pass.</summary>
/// <remarks>
/// Checks what the typed deserializer checks (member types, timestamps, a value for every live field) and ignores unknown
/// members, as it does. The values are written the way <see cref="JsonFields.ToJson"/> writes them, token by token, so the
/// text is the same as a local write of the same values.
/// </remarks>
internal static class StateJson
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = ProtocolLimits.MaxMessageDepth };

    /// <summary>Reads a state.</summary>
    /// <exception cref="JsonException">The state is not a valid document state.</exception>
    public static StateSummary Read(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, ReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A document state must be a JSON object.");
        }

        long revision = 0;
        var deleted = false;
        var fields = Fields;
        fields.Clear();
        try
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("f"u8))
                {
                    Next(ref reader);
                    ReadFields(ref reader, fields);
                }
                else if (reader.ValueTextEquals("rev"u8))
                {
                    Next(ref reader);
                    revision = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : throw Invalid("rev");
                }
                else if (reader.ValueTextEquals("del"u8))
                {
                    Next(ref reader);
                    deleted = reader.TokenType switch
                    {
                        JsonTokenType.True => true,
                        JsonTokenType.False => false,
                        _ => throw Invalid("del"),
                    };
                }
                else if (reader.ValueTextEquals("dh"u8))
                {
                    Next(ref reader);
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        _ = Timestamp(ref reader, "dh");
                    }
                }
                else if (reader.ValueTextEquals("dr"u8) || reader.ValueTextEquals("dr2"u8) || reader.ValueTextEquals("ur"u8) || reader.ValueTextEquals("ur2"u8))
                {
                    Next(ref reader);
                    _ = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : throw Invalid("revision");
                }
                else if (reader.ValueTextEquals("dw"u8) || reader.ValueTextEquals("uw"u8))
                {
                    Next(ref reader);
                    _ = reader.TokenType == JsonTokenType.Number ? reader.GetUInt64() : throw Invalid("replica");
                }
                else
                {
                    Next(ref reader);
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject)
            {
                throw new JsonException("A document state is not a complete JSON object.");
            }

            return new StateSummary(revision, deleted ? null : WriteValue(json, fields));
        }
        catch (InvalidOperationException e)
        {
            // A Get* call on a token of another type, or a number out of range.
            throw new JsonException("A document state holds a member of the wrong type: " + e.Message, e);
        }
        catch (FormatException e)
        {
            throw new JsonException("A document state holds a number out of range: " + e.Message, e);
        }
    }

    /// <summary>The fields of one state: reused per thread, states are read one at a time.</summary>
    [ThreadStatic]
    private static List<Field>? t_fields;

    private static List<Field> Fields => t_fields ??= new List<Field>(16);

    private struct Field
    {
        public string Name;
        public int ValueStart;
        public int ValueEnd;
        public bool HasValue;
        public bool Removed;
        public HybridTimestamp Hlc;
        public bool HasHlc;
    }

    private static void ReadFields(ref Utf8JsonReader reader, List<Field> fields)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid("f");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = new Field { Name = reader.GetString()! };
            Next(ref reader);
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid("f." + field.Name);
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("v"u8))
                {
                    Next(ref reader);
                    field.ValueStart = (int)reader.TokenStartIndex;
                    reader.Skip();
                    field.ValueEnd = (int)reader.BytesConsumed;
                    field.HasValue = true;
                }
                else if (reader.ValueTextEquals("h"u8))
                {
                    Next(ref reader);
                    field.Hlc = Timestamp(ref reader, "h");
                    field.HasHlc = true;
                }
                else if (reader.ValueTextEquals("d"u8))
                {
                    Next(ref reader);
                    field.Removed = reader.TokenType switch
                    {
                        JsonTokenType.True => true,
                        JsonTokenType.False => false,
                        _ => throw Invalid("d"),
                    };
                }
                else if (reader.ValueTextEquals("r"u8))
                {
                    Next(ref reader);
                    _ = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : throw Invalid("r");
                }
                else if (reader.ValueTextEquals("w"u8))
                {
                    Next(ref reader);
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        _ = reader.TokenType == JsonTokenType.Number ? reader.GetUInt64() : throw Invalid("w");
                    }
                }
                else
                {
                    Next(ref reader);
                    reader.Skip();
                }
            }

            if (!field.HasHlc)
            {
                throw new JsonException($"Field '{field.Name}' of a document state has no timestamp.");
            }

            if (!field.Removed && !field.HasValue)
            {
                throw new JsonException($"Field '{field.Name}' of a document state has no value.");
            }

            // A repeated name keeps its first place and its last state, as a dictionary read by System.Text.Json does.
            var index = -1;
            for (var i = 0; i < fields.Count; i++)
            {
                if (string.Equals(fields[i].Name, field.Name, StringComparison.Ordinal))
                {
                    index = i;
                    break;
                }
            }

            if (index >= 0)
            {
                fields[index] = field;
            }
            else
            {
                fields.Add(field);
            }
        }
    }

    private static string WriteValue(ReadOnlySpan<byte> json, List<Field> fields)
    {
        var buffer = JsonFields.Buffer;
        buffer.ResetWrittenCount();
        var writer = JsonFields.Writer(buffer);
        writer.WriteStartObject();
        foreach (var field in fields)
        {
            if (!field.Removed)
            {
                writer.WritePropertyName(field.Name);
                CopyValue(json[field.ValueStart..field.ValueEnd], writer);
            }
        }

        writer.WriteEndObject();
        writer.Flush();
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes one JSON value token by token, as <see cref="JsonElement.WriteTo"/> writes it: strings and names re-encoded, numbers as they are.</summary>
    private static void CopyValue(ReadOnlySpan<byte> value, Utf8JsonWriter writer)
    {
        var reader = new Utf8JsonReader(value, ReaderOptions);
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    writer.WriteStartObject();
                    break;
                case JsonTokenType.EndObject:
                    writer.WriteEndObject();
                    break;
                case JsonTokenType.StartArray:
                    writer.WriteStartArray();
                    break;
                case JsonTokenType.EndArray:
                    writer.WriteEndArray();
                    break;
                case JsonTokenType.PropertyName:
                    if (reader.ValueIsEscaped)
                    {
                        writer.WritePropertyName(reader.GetString()!);
                    }
                    else
                    {
                        writer.WritePropertyName(reader.ValueSpan);
                    }

                    break;
                case JsonTokenType.String:
                    if (reader.ValueIsEscaped)
                    {
                        writer.WriteStringValue(reader.GetString());
                    }
                    else
                    {
                        writer.WriteStringValue(reader.ValueSpan);
                    }

                    break;
                case JsonTokenType.Number:
                    writer.WriteRawValue(reader.ValueSpan, skipInputValidation: true);
                    break;
                case JsonTokenType.True:
                    writer.WriteBooleanValue(true);
                    break;
                case JsonTokenType.False:
                    writer.WriteBooleanValue(false);
                    break;
                case JsonTokenType.Null:
                    writer.WriteNullValue();
                    break;
            }
        }
    }

    private static HybridTimestamp Timestamp(ref Utf8JsonReader reader, string member)
    {
        Span<char> text = stackalloc char[HybridTimestamp.TextLength];
        if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.ValueSpan.Length != HybridTimestamp.TextLength
            || !HybridTimestamp.TryParse(text[..reader.CopyString(text)], out var timestamp))
        {
            throw Invalid(member);
        }

        return timestamp;
    }

    private static void Next(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
        {
            throw new JsonException("A document state ends too early.");
        }
    }

    private static JsonException Invalid(string member) => new($"A document state has an invalid '{member}'.");
}
