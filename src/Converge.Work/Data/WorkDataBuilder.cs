using System.Collections.Immutable;

namespace Converge.Work;

/// <summary>Builds a <see cref="WorkData"/>.</summary>
public sealed class WorkDataBuilder
{
    private readonly ImmutableSortedDictionary<string, object>.Builder _values =
        ImmutableSortedDictionary.CreateBuilder<string, object>(StringComparer.Ordinal);

    /// <summary>Puts a string.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder Put(string key, string value) => PutChecked(key, value);

    /// <summary>Puts an integer.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder Put(string key, long value) => PutChecked(key, value);

    /// <summary>Puts a number.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value; must be finite.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder Put(string key, double value) => PutChecked(key, value);

    /// <summary>Puts a boolean.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder Put(string key, bool value) => PutChecked(key, value);

    /// <summary>Puts a value of any supported type: string, integral or floating-point number, boolean, or an array of one of them.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">The value's type is not supported.</exception>
    public WorkDataBuilder Put(string key, object value) => PutChecked(key, Normalize(key, value));

    /// <summary>Copies every key of other data, replacing keys already present.</summary>
    /// <param name="data">The data to copy.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder PutAll(WorkData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        foreach (var (key, value) in data)
        {
            _values[key] = value;
        }

        return this;
    }

    /// <summary>Removes a key.</summary>
    /// <param name="key">The key.</param>
    /// <returns>This builder.</returns>
    public WorkDataBuilder Remove(string key)
    {
        _values.Remove(key);
        return this;
    }

    /// <summary>Builds the data and checks its size.</summary>
    /// <returns>The data.</returns>
    /// <exception cref="ArgumentException">The serialized data is larger than <see cref="WorkData.MaxDataBytes"/>.</exception>
    public WorkData Build() => WorkData.Create(_values.ToImmutable());

    private WorkDataBuilder PutChecked(string key, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (value is double d && !double.IsFinite(d))
        {
            throw new ArgumentException($"Work data key '{key}': numbers must be finite.", nameof(value));
        }

        if (value is double[] da && da.Any(x => !double.IsFinite(x)))
        {
            throw new ArgumentException($"Work data key '{key}': numbers must be finite.", nameof(value));
        }

        if (value is string[] sa && sa.Any(x => x is null))
        {
            throw new ArgumentException($"Work data key '{key}': string arrays cannot hold null.", nameof(value));
        }

        _values[key] = value;
        return this;
    }

    internal static object Normalize(string key, object value) => value switch
    {
        string or long or double or bool => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        sbyte sb => (long)sb,
        ushort us => (long)us,
        uint ui => (long)ui,
        float f => (double)f,
        string[] a => a.ToArray(),
        long[] a => a.ToArray(),
        double[] a => a.ToArray(),
        bool[] a => a.ToArray(),
        int[] a => Array.ConvertAll(a, x => (long)x),
        float[] a => Array.ConvertAll(a, x => (double)x),
        IEnumerable<string> e => e.ToArray(),
        IEnumerable<long> e => e.ToArray(),
        IEnumerable<double> e => e.ToArray(),
        IEnumerable<bool> e => e.ToArray(),
        IEnumerable<int> e => e.Select(x => (long)x).ToArray(),
        null => throw new ArgumentNullException(nameof(value), $"Work data key '{key}' cannot be null."),
        _ => throw new ArgumentException(
            $"Work data key '{key}' has unsupported type {value.GetType().Name}; use strings, numbers, booleans or arrays of one of them.",
            nameof(value)),
    };
}
