using CsCheck;
namespace Converge.Protocol.Tests;

public class HybridClockTests
{
    private static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>A step of a replica's life: its wall clock moves (also backwards), it stamps an event, or it receives.</summary>
    private sealed record Step(int ClockMoveMs, bool Receive, long RemoteOffsetMs, int RemoteCounter);

    private static readonly Gen<Step> Steps = Gen.Select(
        Gen.Int[-50, 50], Gen.Bool, Gen.Long[-5_000, 59_000], Gen.Int[0, 65_535], (m, r, o, c) => new Step(m, r, o, c));

    [Fact]
    public void Every_timestamp_is_greater_than_all_made_or_received_before_even_when_the_wall_clock_goes_back() =>
        Steps.Array[1, 200].Sample(steps =>
        {
            var time = new WallClock(Start);
            var clock = new HybridClock(1, time);
            var highest = HybridTimestamp.Zero;
            foreach (var step in steps)
            {
                time.Move(TimeSpan.FromMilliseconds(step.ClockMoveMs));
                HybridTimestamp stamped;
                if (step.Receive)
                {
                    var remote = new HybridTimestamp(time.GetUtcNow().ToUnixTimeMilliseconds() + step.RemoteOffsetMs, step.RemoteCounter, 2);
                    Assert.True(clock.TryReceive(remote, out stamped));
                    Assert.True(stamped > remote);
                    highest = remote > highest ? remote : highest;
                }
                else
                {
                    stamped = clock.Now();
                }

                Assert.True(stamped > highest, $"{stamped} is not after {highest}");
                highest = stamped;
                // The physical part never runs ahead of the wall clock by more than what was received (the drift bound).
                Assert.True(stamped.Physical - time.GetUtcNow().ToUnixTimeMilliseconds() <= 60_000 + 1);
            }
        });

    [Fact]
    public void A_timestamp_beyond_the_drift_bound_is_refused_and_changes_nothing()
    {
        var time = new WallClock(Start);
        var clock = new HybridClock(1, time, maxDrift: TimeSpan.FromSeconds(60));
        var before = clock.Now();
        var year2099 = new HybridTimestamp(new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), 0, 2);

        Assert.False(clock.TryReceive(year2099, out _));
        var e = Assert.Throws<ClockDriftException>(() => clock.Receive(year2099));

        Assert.Equal(year2099, e.Remote);
        Assert.Equal(before, clock.Last);
        Assert.True(clock.Now().Physical < year2099.Physical);
    }

    [Fact]
    public void A_restarted_clock_continues_after_its_last_timestamp_even_if_the_wall_clock_went_back()
    {
        var time = new WallClock(Start);
        var last = new HybridClock(7, time).Now();
        time.Move(TimeSpan.FromMinutes(-5));

        var restarted = new HybridClock(7, time, last);

        Assert.True(restarted.Now() > last);
    }

    [Fact]
    public void The_counter_orders_events_within_a_millisecond_and_borrows_the_next_when_spent()
    {
        var time = new WallClock(Start);
        var clock = new HybridClock(1, time);
        var first = clock.Now();
        var previous = first;
        for (var i = 0; i < 70_000; i++)
        {
            var next = clock.Now();
            Assert.True(next > previous);
            previous = next;
        }

        Assert.Equal(first.Physical + 1, previous.Physical);
    }

    [Fact]
    public void Replicas_that_exchange_timestamps_never_produce_equal_ones() =>
        Gen.Select(Gen.Int[0, 20].Array[1, 100], Gen.Bool.Array[100]).Sample((moves, directions) =>
        {
            var time = new WallClock(Start);
            var a = new HybridClock(1, time);
            var b = new HybridClock(2, time);
            var seen = new HashSet<HybridTimestamp>();
            for (var i = 0; i < moves.Length; i++)
            {
                time.Move(TimeSpan.FromMilliseconds(moves[i]));
                var (from, to) = directions[i] ? (a, b) : (b, a);
                var sent = from.Now();
                var received = to.Receive(sent);
                Assert.True(seen.Add(sent));
                Assert.True(seen.Add(received));
                Assert.True(received > sent);
            }
        });
}
