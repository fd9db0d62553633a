using System.Buffers.Binary;
using System.Globalization;

namespace Converge.Protocol;

/// <summary>A hybrid logical clock reading: physical milliseconds, a logical counter, and the node that made it.</summary>
/// <remarks>
/// <para>
/// Timestamps are totally ordered: by physical time, then counter, then node id, so two replicas never tie. They follow
/// causality (a timestamp received is smaller than any made after it) while staying close to wall-clock time.
/// </para>
/// <para>
/// The text form (<see cref="ToString"/>) and the binary form (<see cref="WriteTo"/>) both sort in the same order as the
/// timestamps, so stores can index and compare them without parsing.
/// </para>
/// </remarks>
[System.Text.Json.Serialization.JsonConverter(typeof(Json.HybridTimestampJsonConverter))]
public readonly record struct HybridTimestamp : IComparable<HybridTimestamp>
{
    /// <summary>The largest physical time a timestamp can hold: 2^48 − 1 ms, about the year 10889.</summary>
    public const long MaxPhysical = (1L << 48) - 1;

    /// <summary>The size of the binary form, in bytes.</summary>
    public const int BinarySize = 16;

    /// <summary>The length of the text form, in characters.</summary>
    public const int TextLength = 12 + 1 + 4 + 1 + 16;

    /// <summary>Initializes a timestamp.</summary>
    /// <param name="physical">Milliseconds since the Unix epoch, 0 to <see cref="MaxPhysical"/>.</param>
    /// <param name="counter">The logical counter, 0 to 65,535.</param>
    /// <param name="node">The id of the replica that made the timestamp.</param>
    /// <exception cref="ArgumentOutOfRangeException">A part is out of range.</exception>
    public HybridTimestamp(long physical, int counter, ulong node)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(physical);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(physical, MaxPhysical);
        ArgumentOutOfRangeException.ThrowIfNegative(counter);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(counter, ushort.MaxValue);
        Physical = physical;
        Counter = counter;
        Node = node;
    }

    /// <summary>Gets the smallest timestamp.</summary>
    public static HybridTimestamp Zero { get; }

    /// <summary>Gets the physical part: milliseconds since the Unix epoch.</summary>
    public long Physical { get; }

    /// <summary>Gets the logical counter, which orders events within one millisecond.</summary>
    public int Counter { get; }

    /// <summary>Gets the id of the replica that made the timestamp.</summary>
    public ulong Node { get; }

    /// <summary>Compares two timestamps: physical time, then counter, then node.</summary>
    public static bool operator <(HybridTimestamp left, HybridTimestamp right) => left.CompareTo(right) < 0;

    /// <summary>Compares two timestamps.</summary>
    public static bool operator >(HybridTimestamp left, HybridTimestamp right) => left.CompareTo(right) > 0;

    /// <summary>Compares two timestamps.</summary>
    public static bool operator <=(HybridTimestamp left, HybridTimestamp right) => left.CompareTo(right) <= 0;

    /// <summary>Compares two timestamps.</summary>
    public static bool operator >=(HybridTimestamp left, HybridTimestamp right) => left.CompareTo(right) >= 0;

    /// <inheritdoc />
    public int CompareTo(HybridTimestamp other)
    {
        var c = Physical.CompareTo(other.Physical);
        if (c != 0)
        {
            return c;
        }

        c = Counter.CompareTo(other.Counter);
        return c != 0 ? c : Node.CompareTo(other.Node);
    }

    /// <summary>Formats as fixed-width lowercase hex, <c>pppppppppppp-cccc-nnnnnnnnnnnnnnnn</c>, which sorts like the timestamps.</summary>
    /// <returns>The text form.</returns>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Physical:x12}-{Counter:x4}-{Node:x16}");

    /// <summary>Parses the text form.</summary>
    /// <param name="text">The text form written by <see cref="ToString"/>.</param>
    /// <returns>The timestamp.</returns>
    /// <exception cref="FormatException">The text is not a timestamp.</exception>
    public static HybridTimestamp Parse(string text) =>
        TryParse(text, out var timestamp) ? timestamp : throw new FormatException($"'{text}' is not a hybrid timestamp (expected pppppppppppp-cccc-nnnnnnnnnnnnnnnn in hex).");

    /// <summary>Tries to parse the text form.</summary>
    /// <param name="text">The text.</param>
    /// <param name="timestamp">The timestamp, when the text is valid.</param>
    /// <returns>Whether the text is a timestamp.</returns>
    public static bool TryParse(string? text, out HybridTimestamp timestamp)
    {
        timestamp = default;
        return text is not null && TryParse(text.AsSpan(), out timestamp);
    }

    /// <summary>Tries to parse the text form from characters.</summary>
    /// <param name="text">The characters.</param>
    /// <param name="timestamp">The timestamp, when the text is valid.</param>
    /// <returns>Whether the text is a timestamp.</returns>
    public static bool TryParse(ReadOnlySpan<char> text, out HybridTimestamp timestamp)
    {
        timestamp = default;
        if (text.Length != TextLength || text[12] != '-' || text[17] != '-')
        {
            return false;
        }

        if (!IsLowerHex(text[..12]) || !IsLowerHex(text[13..17]) || !IsLowerHex(text[18..]))
        {
            return false;
        }

        var physical = long.Parse(text[..12], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        var counter = int.Parse(text[13..17], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        var node = ulong.Parse(text[18..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        timestamp = new HybridTimestamp(physical, counter, node);
        return true;
    }

    /// <summary>Formats the text form into characters, without allocating.</summary>
    /// <param name="destination">The buffer; it needs <see cref="TextLength"/> characters.</param>
    /// <param name="charsWritten">The characters written.</param>
    /// <returns>Whether the buffer was large enough.</returns>
    public bool TryFormat(Span<char> destination, out int charsWritten) =>
        destination.TryWrite(CultureInfo.InvariantCulture, $"{Physical:x12}-{Counter:x4}-{Node:x16}", out charsWritten);

    /// <summary>Writes the 16-byte binary form: big-endian physical (48 bits) and counter (16 bits), then node; bytes sort like the timestamps.</summary>
    /// <param name="destination">At least <see cref="BinarySize"/> bytes.</param>
    /// <exception cref="ArgumentException">The destination is too small.</exception>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < BinarySize)
        {
            throw new ArgumentException($"A hybrid timestamp needs {BinarySize} bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt64BigEndian(destination, ((ulong)Physical << 16) | (uint)Counter);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Node);
    }

    /// <summary>Reads the binary form.</summary>
    /// <param name="source">At least <see cref="BinarySize"/> bytes written by <see cref="WriteTo"/>.</param>
    /// <returns>The timestamp.</returns>
    /// <exception cref="ArgumentException">The source is too small.</exception>
    public static HybridTimestamp ReadFrom(ReadOnlySpan<byte> source)
    {
        if (source.Length < BinarySize)
        {
            throw new ArgumentException($"A hybrid timestamp needs {BinarySize} bytes.", nameof(source));
        }

        var high = BinaryPrimitives.ReadUInt64BigEndian(source);
        return new HybridTimestamp((long)(high >> 16), (int)(high & 0xFFFF), BinaryPrimitives.ReadUInt64BigEndian(source[8..]));
    }

    private static bool IsLowerHex(ReadOnlySpan<char> span)
    {
        foreach (var c in span)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return true;
    }
}
