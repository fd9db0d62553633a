using System.Buffers;
using System.Collections;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;

namespace Converge.Work;

/// <summary>An immutable set of key-value pairs passed into and out of work: strings, numbers, booleans and arrays of them.</summary>
/// <remarks>
/// Like WorkManager's <c>Data</c>, it is meant for small values (ids, flags, counts), not payloads: the serialized form is
/// capped at <see cref="MaxDataBytes"/> bytes, checked when it is built. Keep payloads in your own store and pass their key.
/// Numbers are stored as 64-bit integers when integral and as doubles otherwise.
/// </remarks>
public sealed class WorkData : IReadOnlyDictionary<string, object>, IEquatable<WorkData>
{
    /// <summary>The largest serialized size of a <see cref="WorkData"/>, in bytes: 10,240, as in WorkManager.</summary>
    public const int MaxDataBytes = 10 * 1024;

    private readonly ImmutableSortedDictionary<string, object> _values;
    private string? _json;

    private WorkData(ImmutableSortedDictionary<string, object> values, string json)
    {
        _values = values;
        _json = json;
    }

    /// <summary>Gets the empty data.</summary>
    public static WorkData Empty { get; } = new(ImmutableSortedDictionary<string, object>.Empty.WithComparers(StringComparer.Ordinal), "{}");

    /// <summary>Starts building data.</summary>
    /// <returns>A new builder.</returns>
    public static WorkDataBuilder CreateBuilder() => new();

    /// <summary>Builds data from pairs; each value must be a supported type.</summary>
    /// <param name="pairs">The keys and values.</param>
    /// <returns>The data.</returns>
    /// <exception cref="ArgumentException">A value has an unsupported type, or the data is larger than <see cref="MaxDataBytes"/>.</exception>
    public static WorkData From(params ReadOnlySpan<(string Key, object Value)> pairs)
    {
        var builder = new WorkDataBuilder();
        foreach (var (key, value) in pairs)
        {
            builder.Put(key, value);
        }

        return builder.Build();
    }

    /// <summary>Gets the number of keys.</summary>
    public int Count => _values.Count;

    /// <summary>Gets whether there are no keys.</summary>
    public bool IsEmpty => _values.IsEmpty;

    /// <summary>Gets the keys, in ordinal order.</summary>
    public IEnumerable<string> Keys => _values.Keys;

    /// <summary>Gets the values, in key order.</summary>
    public IEnumerable<object> Values => _values.Values;

    /// <summary>Gets the value stored under a key.</summary>
    /// <param name="key">The key.</param>
    public object this[string key] => _values[key];

    /// <summary>Gets the serialized size in bytes, the figure the <see cref="MaxDataBytes"/> cap applies to.</summary>
    public int SerializedSize => System.Text.Encoding.UTF8.GetByteCount(ToJson());

    /// <inheritdoc />
    public bool ContainsKey(string key) => _values.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out object value) => _values.TryGetValue(key, out value);

    /// <summary>Gets a string value.</summary>
    /// <param name="key">The key.</param>
    /// <returns>The value, or <see langword="null"/> when the key is missing or holds another type.</returns>
    public string? GetString(string key) => _values.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>Gets an integral value.</summary>
    /// <param name="key">The key.</param>
    /// <param name="defaultValue">The value to return when the key is missing or not an integer.</param>
    /// <returns>The value.</returns>
    public long GetInt64(string key, long defaultValue = 0) => _values.TryGetValue(key, out var v) && v is long l ? l : defaultValue;

    /// <summary>Gets a numeric value as a double (integral values convert).</summary>
    /// <param name="key">The key.</param>
    /// <param name="defaultValue">The value to return when the key is missing or not a number.</param>
    /// <returns>The value.</returns>
    public double GetDouble(string key, double defaultValue = 0) => _values.TryGetValue(key, out var v)
        ? v switch { double d => d, long l => l, _ => defaultValue }
        : defaultValue;

    /// <summary>Gets a boolean value.</summary>
    /// <param name="key">The key.</param>
    /// <param name="defaultValue">The value to return when the key is missing or not a boolean.</param>
    /// <returns>The value.</returns>
    public bool GetBoolean(string key, bool defaultValue = false) => _values.TryGetValue(key, out var v) && v is bool b ? b : defaultValue;

    /// <summary>Gets a string array value.</summary>
    /// <param name="key">The key.</param>
    /// <returns>The array, or <see langword="null"/> when the key is missing or holds another type.</returns>
    public IReadOnlyList<string>? GetStringArray(string key) => _values.TryGetValue(key, out var v) ? v as string[] ?? EmptyAs<string>(v) : null;

    /// <summary>Gets an integer array value.</summary>
    /// <param name="key">The key.</param>
    /// <returns>The array, or <see langword="null"/> when the key is missing or holds another type.</returns>
    public IReadOnlyList<long>? GetInt64Array(string key) => _values.TryGetValue(key, out var v) ? v as long[] ?? EmptyAs<long>(v) : null;

    /// <summary>Gets a double array value (integer arrays convert).</summary>
    /// <param name="key">The key.</param>
    /// <returns>The array, or <see langword="null"/> when the key is missing or holds another type.</returns>
    public IReadOnlyList<double>? GetDoubleArray(string key) => _values.TryGetValue(key, out var v)
        ? v switch { double[] d => d, long[] l => Array.ConvertAll(l, x => (double)x), _ => EmptyAs<double>(v) }
        : null;

    /// <summary>Gets a boolean array value.</summary>
    /// <param name="key">The key.</param>
    /// <returns>The array, or <see langword="null"/> when the key is missing or holds another type.</returns>
    public IReadOnlyList<bool>? GetBooleanArray(string key) => _values.TryGetValue(key, out var v) ? v as bool[] ?? EmptyAs<bool>(v) : null;

    /// <summary>An empty array has no element type in JSON, so it reads back as an empty array of any type.</summary>
    private static T[]? EmptyAs<T>(object value) => value is Array { Length: 0 } ? [] : null;

    /// <summary>Serializes the data to its JSON form, the form that is stored and measured against the cap.</summary>
    /// <returns>A JSON object.</returns>
    public string ToJson() => _json ??= Serialize(_values);

    /// <summary>Reads data from the JSON form written by <see cref="ToJson"/>.</summary>
    /// <param name="json">A JSON object whose values are strings, numbers, booleans or homogeneous arrays of them.</param>
    /// <returns>The data.</returns>
    /// <exception cref="FormatException">The JSON is not a valid work data object.</exception>
    public static WorkData FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (json is "{}" or "")
        {
            return Empty;
        }

        var builder = new WorkDataBuilder();
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("Work data must be a JSON object.");
            }

            foreach (var property in doc.RootElement.EnumerateObject())
            {
                builder.Put(property.Name, ReadValue(property.Value, property.Name));
            }
        }
        catch (JsonException e)
        {
            throw new FormatException($"Work data is not valid JSON: {e.Message}", e);
        }

        return builder.Build();
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc />
    public bool Equals(WorkData? other) => other is not null && string.Equals(ToJson(), other.ToJson(), StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as WorkData);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToJson());

    /// <inheritdoc />
    public override string ToString() => ToJson();

    internal static WorkData Create(ImmutableSortedDictionary<string, object> values)
    {
        if (values.IsEmpty)
        {
            return Empty;
        }

        var json = Serialize(values);
        var size = System.Text.Encoding.UTF8.GetByteCount(json);
        if (size > MaxDataBytes)
        {
            throw new ArgumentException(
                $"Work data is {size.ToString(CultureInfo.InvariantCulture)} bytes serialized; the limit is {MaxDataBytes.ToString(CultureInfo.InvariantCulture)}. Store large payloads elsewhere and pass their key.");
        }

        return new WorkData(values, json);
    }

    private static object ReadValue(JsonElement element, string key)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String: return element.GetString()!;
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Number: return ReadNumber(element);
            case JsonValueKind.Array:
                var items = element.EnumerateArray().ToList();
                if (items.Count == 0)
                {
                    return Array.Empty<string>();
                }

                var kind = items[0].ValueKind is JsonValueKind.True or JsonValueKind.False ? JsonValueKind.True : items[0].ValueKind;
                switch (kind)
                {
                    case JsonValueKind.String when items.All(i => i.ValueKind == JsonValueKind.String):
                        return items.Select(i => i.GetString()!).ToArray();
                    case JsonValueKind.True when items.All(i => i.ValueKind is JsonValueKind.True or JsonValueKind.False):
                        return items.Select(i => i.GetBoolean()).ToArray();
                    case JsonValueKind.Number when items.All(i => i.ValueKind == JsonValueKind.Number):
                        var numbers = items.Select(ReadNumber).ToList();
                        return numbers.All(n => n is long)
                            ? numbers.Select(n => (long)n).ToArray()
                            : numbers.Select(n => n is long l ? l : (double)n).ToArray();
                    default:
                        throw new FormatException($"Work data key '{key}' holds an array of mixed or unsupported types.");
                }

            default:
                throw new FormatException($"Work data key '{key}' holds an unsupported JSON {element.ValueKind}.");
        }
    }

    private static object ReadNumber(JsonElement element)
    {
        var raw = element.GetRawText();
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0 && element.TryGetInt64(out var l))
        {
            return l;
        }

        return element.GetDouble();
    }

    private static string Serialize(ImmutableSortedDictionary<string, object> values)
    {
        if (values.IsEmpty)
        {
            return "{}";
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in values)
            {
                writer.WritePropertyName(key);
                WriteValue(writer, value);
            }

            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteValue(Utf8JsonWriter writer, object value)
    {
        switch (value)
        {
            case string s: writer.WriteStringValue(s); break;
            case long l: writer.WriteNumberValue(l); break;
            case double d: WriteDouble(writer, d); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case string[] a: writer.WriteStartArray(); foreach (var x in a) { writer.WriteStringValue(x); } writer.WriteEndArray(); break;
            case long[] a: writer.WriteStartArray(); foreach (var x in a) { writer.WriteNumberValue(x); } writer.WriteEndArray(); break;
            case double[] a: writer.WriteStartArray(); foreach (var x in a) { WriteDouble(writer, x); } writer.WriteEndArray(); break;
            case bool[] a: writer.WriteStartArray(); foreach (var x in a) { writer.WriteBooleanValue(x); } writer.WriteEndArray(); break;
            default: throw new InvalidOperationException($"Unsupported work data value type {value.GetType()}.");
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double d)
    {
        // Doubles keep a fraction or exponent in their text so they read back as doubles, not integers.
        var text = d.ToString("R", CultureInfo.InvariantCulture);
        if (text.AsSpan().IndexOfAny('.', 'E') < 0)
        {
            text += ".0";
        }

        writer.WriteRawValue(text);
    }
}
