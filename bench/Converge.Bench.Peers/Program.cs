// Peer-scheduler benchmark: runs Quartz.NET or Hangfire on SQLite with the workloads Converge.Work
// is measured on, so the `work` benchmark (bench/Converge.Benchmarks) can report a fair ratio.
//
//   Converge.Bench.Peers <quartz|hangfire> <throughput|latency> --n N --workers W --dir DIR
//                        [--timeout-s S] [--poll-ms P]
//
// Exactly one line of JSON goes to stdout at the end; everything else goes to stderr.
// Exit codes: 0 ok, 1 failure (JSON carries "error"), 2 bad command line, 3 timed out.

using Converge.Bench.Peers;

// Keep stdout for the single JSON line: anything a library writes to Console.Out lands on stderr.
var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
Console.SetOut(Console.Error);

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

if (options.Warmup > 0)
{
    // Same code paths on a separate store, results discarded: the timed run then measures the scheduler, not the JIT.
    var warmOptions = options with { Mode = "throughput", N = options.Warmup, Dir = Path.Combine(options.Dir, "warmup") };
    Directory.CreateDirectory(warmOptions.Dir);
    await using (PeerBase warm = options.Peer == "quartz" ? new QuartzPeer() : new HangfirePeer())
    {
        await warm.RunThroughputAsync(warmOptions, new BenchResult(warmOptions));
    }

    Console.Error.WriteLine($"[{options.Peer}] warmed up with {options.Warmup} jobs");
}

var result = new BenchResult(options);
PeerBase peer = options.Peer == "quartz" ? new QuartzPeer() : new HangfirePeer();
Console.Error.WriteLine($"[{options.Peer}] {options.Mode} n={options.N} workers={options.Workers} dir={options.Dir}");

var run = options.Mode == "throughput"
    ? peer.RunThroughputAsync(options, result)
    : peer.RunLatencyAsync(options, result);
var winner = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(options.TimeoutSeconds)));

if (winner != run)
{
    result.Set("timed_out", true);
    result.Set("completed", Probe.Completed);
    if (options.Mode == "latency")
    {
        result.AddLatencyStats(partial: true);
    }

    Console.Error.WriteLine($"[{options.Peer}] timed out after {options.TimeoutSeconds}s with {Probe.Completed} jobs run");
    stdout.WriteLine(result.ToJson());
    Environment.Exit(3);
}

if (run.IsFaulted)
{
    var error = run.Exception!.GetBaseException();
    Console.Error.WriteLine(error);
    result.Set("error", error.GetType().Name + ": " + error.Message);
    stdout.WriteLine(result.ToJson());
    Environment.Exit(1);
}

stdout.WriteLine(result.ToJson());

// The measurement is out; shut the scheduler down, but never let a slow shutdown hold the parent.
var cleanup = peer.DisposeAsync().AsTask();
if (await Task.WhenAny(cleanup, Task.Delay(TimeSpan.FromSeconds(20))) != cleanup)
{
    Console.Error.WriteLine($"[{options.Peer}] shutdown took longer than 20s, exiting anyway");
}
else if (cleanup.IsFaulted)
{
    Console.Error.WriteLine($"[{options.Peer}] shutdown failed: {cleanup.Exception!.GetBaseException().Message}");
}

Environment.Exit(0);
return 0;
