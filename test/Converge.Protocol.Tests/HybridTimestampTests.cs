using CsCheck;

namespace Converge.Protocol.Tests;

public class HybridTimestampTests
{
    internal static readonly Gen<HybridTimestamp> Timestamps = Gen.Select(
        Gen.Long[0, HybridTimestamp.MaxPhysical],
        Gen.Int[0, ushort.MaxValue],
        Gen.ULong,
        (p, c, n) => new HybridTimestamp(p, c, n));

    /// <summary>Small ranges, so that ties on the physical part and the counter actually occur.</summary>
    private static readonly Gen<HybridTimestamp> Close = Gen.Select(
        Gen.Long[1_000, 1_003], Gen.Int[0, 3], Gen.ULong[0, 3], (p, c, n) => new HybridTimestamp(p, c, n));

    [Fact]
    public void Text_form_round_trips_and_sorts_like_the_timestamps() =>
        Gen.Select(Timestamps, Timestamps).Sample((a, b) =>
        {
            Assert.Equal(a, HybridTimestamp.Parse(a.ToString()));
            Assert.Equal(HybridTimestamp.TextLength, a.ToString().Length);
            Assert.Equal(Math.Sign(a.CompareTo(b)), Math.Sign(string.CompareOrdinal(a.ToString(), b.ToString())));
        });

    [Fact]
    public void Binary_form_round_trips_and_sorts_like_the_timestamps() =>
        Gen.Select(Gen.OneOf(Timestamps, Close), Gen.OneOf(Timestamps, Close)).Sample((a, b) =>
        {
            var x = new byte[HybridTimestamp.BinarySize];
            var y = new byte[HybridTimestamp.BinarySize];
            a.WriteTo(x);
            b.WriteTo(y);
            Assert.Equal(a, HybridTimestamp.ReadFrom(x));
            Assert.Equal(Math.Sign(a.CompareTo(b)), Math.Sign(x.AsSpan().SequenceCompareTo(y)));
        });

    [Fact]
    public void Order_is_total_and_consistent_with_equality() =>
        Gen.Select(Close, Close, Close).Sample((a, b, c) =>
        {
            Assert.Equal(a == b, a.CompareTo(b) == 0);
            Assert.Equal(-Math.Sign(a.CompareTo(b)), Math.Sign(b.CompareTo(a)));
            if (a <= b && b <= c)
            {
                Assert.True(a <= c);
            }
        });

    [Theory]
    [InlineData("")]
    [InlineData("00000000000a-0000-000000000000000")]
    [InlineData("00000000000A-0000-0000000000000000")]
    [InlineData("00000000000a_0000-0000000000000000")]
    [InlineData("00000000000a-000g-0000000000000000")]
    public void Malformed_text_is_refused(string text)
    {
        Assert.False(HybridTimestamp.TryParse(text, out _));
        Assert.Throws<FormatException>(() => HybridTimestamp.Parse(text));
    }

    [Fact]
    public void Parts_out_of_range_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new HybridTimestamp(-1, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HybridTimestamp(HybridTimestamp.MaxPhysical + 1, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HybridTimestamp(0, 65_536, 0));
        Assert.Throws<ArgumentException>(() => new HybridTimestamp(1, 1, 1).WriteTo(new byte[15]));
    }
}
