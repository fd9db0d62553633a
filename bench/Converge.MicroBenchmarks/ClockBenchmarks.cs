using BenchmarkDotNet.Attributes;
using Converge.Protocol;

namespace Converge.MicroBenchmarks;

/// <summary>
/// The hybrid logical clock: <see cref="HybridClock.Now"/> stamps every local write and outgoing message,
/// <see cref="HybridClock.TryReceive"/> folds in every received timestamp (the server calls it once per mutation).
/// </summary>
/// <remarks>One thread, no contention: the cost of the lock, the wall clock read and the arithmetic.</remarks>
[MemoryDiagnoser]
public class ClockBenchmarks
{
    private readonly HybridClock _clock = new(Documents.WriterA);
    private HybridTimestamp _remote;

    /// <summary>A received timestamp a second behind the wall clock, as from a device that wrote a moment ago.</summary>
    [GlobalSetup]
    public void Setup() => _remote = new HybridTimestamp(TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() - 1_000, 3, Documents.WriterB);

    /// <summary>Stamps a local event.</summary>
    [Benchmark(Baseline = true)]
    public HybridTimestamp Now() => _clock.Now();

    /// <summary>Folds in a received timestamp and stamps the receipt.</summary>
    [Benchmark]
    public HybridTimestamp TryReceive() => _clock.TryReceive(_remote, out var stamped) ? stamped : throw new InvalidOperationException("The timestamp was refused.");
}
