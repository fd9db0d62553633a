using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Converge.Bench.Peers;

/// <summary>
/// The two workloads, written once so both peers run exactly the same thing; a peer only says how to
/// set itself up, enqueue one job, start processing and count what its store reports done.
/// </summary>
internal abstract class PeerBase : IAsyncDisposable
{
    /// <summary>Warm-up jobs run before the counted latency jobs.</summary>
    public const int LatencyWarmup = 50;

    /// <summary>Latency-mode pacing: one enqueue per tick, about 100 per second.</summary>
    public static readonly TimeSpan LatencyTick = TimeSpan.FromMilliseconds(10);

    /// <summary>Creates the database and the scheduler, which must not process anything yet.</summary>
    protected abstract Task SetupAsync(BenchOptions options);

    /// <summary>Enqueues one no-op job to run now; <paramref name="index"/> is -1 in throughput mode.</summary>
    protected abstract ValueTask EnqueueAsync(int index);

    /// <summary>Starts processing with the configured number of workers.</summary>
    protected abstract Task StartAsync();

    /// <summary>How many of <paramref name="expected"/> jobs the store itself reports finished.</summary>
    protected abstract Task<long> DoneInStoreAsync(int expected);

    public abstract ValueTask DisposeAsync();

    public async Task RunThroughputAsync(BenchOptions options, BenchResult result)
    {
        await SetupAsync(options);
        var allRan = Probe.Arm(options.N);

        var enqueue = Stopwatch.StartNew();
        for (var i = 0; i < options.N; i++)
        {
            await EnqueueAsync(-1);
        }

        var enqueueS = enqueue.Elapsed.TotalSeconds;
        result.Set("enqueue_s", BenchResult.Round(enqueueS, 4));
        Console.Error.WriteLine($"[{options.Peer}] enqueued {options.N} in {enqueueS:F3}s, starting {options.Workers} workers");

        var drain = Stopwatch.StartNew();
        await StartAsync();
        await allRan;
        var drainS = drain.Elapsed.TotalSeconds;
        var totalS = enqueueS + drainS;
        result.Set("drain_s", BenchResult.Round(drainS, 4));
        result.Set("total_s", BenchResult.Round(totalS, 4));
        result.Set("works_per_s", BenchResult.Round(options.N / totalS, 1));
        result.Set("drain_per_s", BenchResult.Round(options.N / drainS, 1));

        result.Set("store_done", await ConfirmInStoreAsync(options));
    }

    public async Task RunLatencyAsync(BenchOptions options, BenchResult result)
    {
        await SetupAsync(options);
        await StartAsync();

        var total = LatencyWarmup + options.N;
        Probe.PrepareLatency(total);
        result.MeasuredFrom = LatencyWarmup;

        using var timer = new PeriodicTimer(LatencyTick);
        var warmupRan = Probe.Arm(LatencyWarmup);
        await EnqueuePacedAsync(timer, 0, LatencyWarmup);
        await warmupRan;
        Console.Error.WriteLine($"[{options.Peer}] {LatencyWarmup} warm-up jobs ran, measuring {options.N}");

        var allRan = Probe.Arm(total);
        await EnqueuePacedAsync(timer, LatencyWarmup, total);
        await allRan;

        result.AddLatencyStats(partial: false);
        result.Set("store_done", await ConfirmInStoreAsync(options, total) - LatencyWarmup);
    }

    private async Task EnqueuePacedAsync(PeriodicTimer timer, int from, int to)
    {
        for (var i = from; i < to; i++)
        {
            await timer.WaitForNextTickAsync();
            Volatile.Write(ref Probe.EnqueuedAt[i], Stopwatch.GetTimestamp());
            await EnqueueAsync(i);
        }
    }

    /// <summary>
    /// The counter says every job ran; the store finishes its own bookkeeping for the last few a moment
    /// later (the job body runs before the completion transaction), so give it a short while to agree.
    /// </summary>
    private async Task<long> ConfirmInStoreAsync(BenchOptions options, int? expectedTotal = null)
    {
        var expected = expectedTotal ?? options.N;
        var wait = Stopwatch.StartNew();
        long done;
        while ((done = await DoneInStoreAsync(expected)) < expected && wait.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        if (done != expected)
        {
            Console.Error.WriteLine($"[{options.Peer}] WARNING: store reports {done} of {expected} jobs done");
        }
        else
        {
            Console.Error.WriteLine($"[{options.Peer}] store confirms {done} jobs done ({wait.Elapsed.TotalMilliseconds:F0} ms to agree)");
        }

        return done;
    }
}

internal sealed record BenchOptions(
    string Peer, string Mode, int N, int Workers, string Dir, int TimeoutSeconds, double? PollMs, int Warmup = 0)
{
    public const string Usage =
        "usage: Converge.Bench.Peers <quartz|hangfire> <throughput|latency> --n N --workers W --dir DIR " +
        "[--timeout-s S (default 300)] [--poll-ms P (hangfire queue poll interval in ms, default 1)] " +
        "[--warmup W (a throughput round of W jobs on a separate store first, so the timed run is not paying for JIT)]";

    public static BenchOptions Parse(string[] args)
    {
        if (args.Length < 2)
        {
            throw new ArgumentException("expected a peer and a mode");
        }

        var peer = args[0].ToLowerInvariant();
        var mode = args[1].ToLowerInvariant();
        if (peer is not ("quartz" or "hangfire"))
        {
            throw new ArgumentException($"unknown peer '{args[0]}'");
        }

        if (mode is not ("throughput" or "latency"))
        {
            throw new ArgumentException($"unknown mode '{args[1]}'");
        }

        int? n = null, workers = null;
        string? dir = null;
        var timeout = 300;
        double? pollMs = null;
        var warmup = 0;
        for (var i = 2; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length)
            {
                throw new ArgumentException($"missing value for '{name}'");
            }

            var value = args[++i];
            switch (name)
            {
                case "--n": n = PositiveInt(name, value); break;
                case "--workers": workers = PositiveInt(name, value); break;
                case "--dir": dir = value; break;
                case "--timeout-s": timeout = PositiveInt(name, value); break;
                case "--warmup": warmup = PositiveInt(name, value); break;
                case "--poll-ms":
                    pollMs = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) && p > 0
                        ? p
                        : throw new ArgumentException($"'{name}' needs a positive number, got '{value}'");
                    break;
                default: throw new ArgumentException($"unknown option '{name}'");
            }
        }

        if (n is null || workers is null || dir is null)
        {
            throw new ArgumentException("--n, --workers and --dir are required");
        }

        Directory.CreateDirectory(dir);
        return new BenchOptions(peer, mode, n.Value, workers.Value, Path.GetFullPath(dir), timeout, pollMs, warmup);
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v
            : throw new ArgumentException($"'{name}' needs a positive integer, got '{value}'");
}

/// <summary>What the jobs report back. Static, because both schedulers build the job themselves.</summary>
internal static class Probe
{
    private static int completed;
    private static int target = int.MaxValue;
    private static TaskCompletionSource done = NewTcs();

    /// <summary>Enqueue timestamps by job index (latency mode), written just before the enqueue call.</summary>
    public static long[] EnqueuedAt { get; private set; } = [];

    /// <summary>Start timestamps by job index (latency mode), written by the job when it starts.</summary>
    public static long[] StartedAt { get; private set; } = [];

    public static int Completed => Volatile.Read(ref completed);

    /// <summary>Arms the counter: the returned task completes when <paramref name="count"/> jobs have run in total.</summary>
    public static Task Arm(int count)
    {
        var tcs = NewTcs();
        Volatile.Write(ref done, tcs);
        Volatile.Write(ref target, count);
        if (Completed >= count)
        {
            tcs.TrySetResult();
        }

        return tcs.Task;
    }

    public static void PrepareLatency(int total)
    {
        EnqueuedAt = new long[total];
        StartedAt = new long[total];
    }

    /// <summary>Called by a job when it starts; <paramref name="index"/> is -1 for throughput jobs.</summary>
    public static void JobRan(int index)
    {
        if (index >= 0)
        {
            Volatile.Write(ref StartedAt[index], Stopwatch.GetTimestamp());
        }

        if (Interlocked.Increment(ref completed) >= Volatile.Read(ref target))
        {
            Volatile.Read(ref done).TrySetResult();
        }
    }

    private static TaskCompletionSource NewTcs() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The JSON line, filled in as the run goes so a timeout can still print what it has.</summary>
internal sealed class BenchResult
{
    private readonly Dictionary<string, object> fields = [];
    private readonly Lock gate = new();

    public BenchResult(BenchOptions options)
    {
        Options = options;
        Set("peer", options.Peer);
        Set("mode", options.Mode);
        Set("n", options.N);
        Set("workers", options.Workers);
    }

    public BenchOptions Options { get; }

    /// <summary>Index of the first counted (non-warm-up) job in latency mode.</summary>
    public int MeasuredFrom { get; set; }

    public void Set(string key, object value)
    {
        lock (gate)
        {
            fields[key] = value;
        }
    }

    public static double Round(double value, int digits) => Math.Round(value, digits, MidpointRounding.AwayFromZero);

    /// <summary>Nearest-rank p50/p99/max of enqueue-to-start over the counted jobs that have started.</summary>
    public void AddLatencyStats(bool partial)
    {
        var enq = Probe.EnqueuedAt;
        var start = Probe.StartedAt;
        var samples = new List<double>(Math.Max(0, enq.Length - MeasuredFrom));
        for (var i = MeasuredFrom; i < enq.Length; i++)
        {
            var e = Volatile.Read(ref enq[i]);
            var s = Volatile.Read(ref start[i]);
            if (e != 0 && s != 0)
            {
                samples.Add((s - e) * 1000.0 / Stopwatch.Frequency);
            }
        }

        if (partial)
        {
            Set("samples", samples.Count);
        }

        if (samples.Count == 0)
        {
            return;
        }

        samples.Sort();
        Set("p50_ms", Round(Percentile(samples, 0.50), 3));
        Set("p99_ms", Round(Percentile(samples, 0.99), 3));
        Set("max_ms", Round(samples[^1], 3));
    }

    public string ToJson()
    {
        lock (gate)
        {
            return JsonSerializer.Serialize(fields);
        }
    }

    private static double Percentile(List<double> sorted, double p)
    {
        var rank = (int)Math.Ceiling(p * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }
}
