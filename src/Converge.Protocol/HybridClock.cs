namespace Converge.Protocol;

/// <summary>A replica's hybrid logical clock: stamps local events and folds in timestamps received from others. Thread-safe.</summary>
/// <remarks>
/// <para>
/// Follows Kulkarni et al.'s hybrid logical clock: every timestamp it returns is greater than every timestamp it has
/// returned or received before, and its physical part stays within the drift bound of the local clock.
/// </para>
/// <para>
/// A received timestamp more than <see cref="MaxDrift"/> ahead of the local clock is refused
/// (<see cref="TryReceive"/> returns <see langword="false"/>) and leaves the clock unchanged: a device set to the year
/// 2099 cannot drag every replica's clock, and so every future write, along with it.
/// </para>
/// <para>
/// More than 65,536 events within one millisecond move the physical part on by a millisecond rather than overflow
/// the counter; order and uniqueness hold, at the cost of running that far ahead of the wall clock.
/// </para>
/// </remarks>
public sealed class HybridClock
{
    /// <summary>The default bound on how far ahead of the local clock a received timestamp may be: 60 seconds.</summary>
    public static readonly TimeSpan DefaultMaxDrift = TimeSpan.FromSeconds(60);

    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private long _physical;
    private int _counter;

    /// <summary>Initializes a clock.</summary>
    /// <param name="node">This replica's id, unique among the replicas that exchange timestamps.</param>
    /// <param name="timeProvider">The wall clock; by default the system clock.</param>
    /// <param name="last">The last timestamp this replica made or received before a restart, so the clock never goes back.</param>
    /// <param name="maxDrift">How far ahead of the local clock a received timestamp may be; by default <see cref="DefaultMaxDrift"/>.</param>
    public HybridClock(ulong node, TimeProvider? timeProvider = null, HybridTimestamp? last = null, TimeSpan? maxDrift = null)
    {
        Node = node;
        _time = timeProvider ?? TimeProvider.System;
        MaxDrift = maxDrift ?? DefaultMaxDrift;
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDrift, TimeSpan.Zero, nameof(maxDrift));
        if (last is { } l)
        {
            _physical = l.Physical;
            _counter = l.Counter;
        }
    }

    /// <summary>Gets this replica's id.</summary>
    public ulong Node { get; }

    /// <summary>Gets how far ahead of the local clock a received timestamp may be.</summary>
    public TimeSpan MaxDrift { get; }

    /// <summary>Gets the latest timestamp this clock made or took in, with this clock's node id.</summary>
    public HybridTimestamp Last
    {
        get
        {
            lock (_lock)
            {
                return new HybridTimestamp(_physical, _counter, Node);
            }
        }
    }

    /// <summary>Stamps a local event or a message about to be sent.</summary>
    /// <returns>A timestamp greater than any this clock has made or received.</returns>
    public HybridTimestamp Now()
    {
        lock (_lock)
        {
            var wall = Wall();
            if (wall > _physical)
            {
                _physical = wall;
                _counter = 0;
            }
            else
            {
                Tick();
            }

            return new HybridTimestamp(_physical, _counter, Node);
        }
    }

    /// <summary>Folds in a timestamp received from another replica, and stamps the receipt.</summary>
    /// <param name="remote">The received timestamp.</param>
    /// <param name="stamped">A timestamp greater than <paramref name="remote"/> and than anything this clock made before.</param>
    /// <returns><see langword="false"/>, changing nothing, when <paramref name="remote"/> is more than <see cref="MaxDrift"/> ahead of the local clock.</returns>
    public bool TryReceive(HybridTimestamp remote, out HybridTimestamp stamped)
    {
        lock (_lock)
        {
            var wall = Wall();
            if (remote.Physical - wall > (long)MaxDrift.TotalMilliseconds)
            {
                stamped = default;
                return false;
            }

            var previous = _physical;
            var physical = Math.Max(Math.Max(previous, remote.Physical), wall);
            if (physical == previous && physical == remote.Physical)
            {
                _counter = Math.Max(_counter, remote.Counter);
                Tick();
            }
            else if (physical == previous)
            {
                Tick();
            }
            else if (physical == remote.Physical)
            {
                _physical = physical;
                _counter = remote.Counter;
                Tick();
            }
            else
            {
                _physical = physical;
                _counter = 0;
            }

            stamped = new HybridTimestamp(_physical, _counter, Node);
            return true;
        }
    }

    /// <summary>Folds in a received timestamp, and stamps the receipt.</summary>
    /// <param name="remote">The received timestamp.</param>
    /// <returns>A timestamp greater than <paramref name="remote"/> and than anything this clock made before.</returns>
    /// <exception cref="ClockDriftException"><paramref name="remote"/> is more than <see cref="MaxDrift"/> ahead of the local clock.</exception>
    public HybridTimestamp Receive(HybridTimestamp remote) =>
        TryReceive(remote, out var stamped)
            ? stamped
            : throw new ClockDriftException(remote, Wall(), MaxDrift);

    private long Wall() => Math.Clamp(_time.GetUtcNow().ToUnixTimeMilliseconds(), 0, HybridTimestamp.MaxPhysical);

    private void Tick()
    {
        if (_counter < ushort.MaxValue)
        {
            _counter++;
            return;
        }

        // The counter is spent for this millisecond: borrow the next one.
        _physical++;
        _counter = 0;
    }
}

/// <summary>Thrown when a received timestamp is further ahead of the local clock than the drift bound allows.</summary>
public sealed class ClockDriftException : Exception
{
    /// <summary>Initializes the exception.</summary>
    /// <param name="remote">The received timestamp.</param>
    /// <param name="localPhysical">The local clock, in Unix milliseconds.</param>
    /// <param name="maxDrift">The bound.</param>
    public ClockDriftException(HybridTimestamp remote, long localPhysical, TimeSpan maxDrift)
        : base($"Timestamp {remote} is {TimeSpan.FromMilliseconds(remote.Physical - localPhysical)} ahead of the local clock; the limit is {maxDrift}.")
    {
        Remote = remote;
        LocalPhysical = localPhysical;
        MaxDrift = maxDrift;
    }

    /// <summary>Gets the received timestamp.</summary>
    public HybridTimestamp Remote { get; }

    /// <summary>Gets the local clock when it was refused, in Unix milliseconds.</summary>
    public long LocalPhysical { get; }

    /// <summary>Gets the drift bound.</summary>
    public TimeSpan MaxDrift { get; }
}
