using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Cli;
using Converge.Work;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>`work`: the Converge.Work workloads and the same workloads on Quartz.NET and Hangfire.</summary>
internal static class WorkBench
{
    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Work items per throughput run.", DefaultValueFactory = _ => 10_000 };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var workers = new Option<int[]>("--workers") { Description = "Concurrent workers to measure with.", DefaultValueFactory = _ => [2, 8], AllowMultipleArgumentsPerToken = true };
        var skipPeers = new Option<bool>("--skip-peers") { Description = "Measure Converge only." };
        var pending = new Option<int>("--pending") { Description = "Pending work items in the restart measurement.", DefaultValueFactory = _ => 100_000 };
        var postgres = BenchPostgres.CreateOption("Also drain --n work items with two scheduler nodes (two processes) sharing one queue in PostgreSQL, against one node and against SQLite.");
        var nodeWorkers = new Option<int>("--node-workers") { Description = "Concurrent workers of each node in the --postgres workload.", DefaultValueFactory = _ => 8 };
        var only = new Option<string?>("--only") { Description = "Run only this workload: 'postgres' (needs --postgres)." };
        only.AcceptOnlyFromAmong("postgres");
        var command = new Command("work", "Converge.Work throughput, latency, durability levels and restart, against Quartz.NET and Hangfire on SQLite; with --postgres, two nodes on PostgreSQL.")
        {
            n, json, workers, skipPeers, pending, postgres, nodeWorkers, only,
        };
        command.SetAction((parse, ct) => RunAsync(
            new Settings(parse.GetValue(n), parse.GetValue(workers)!, parse.GetValue(skipPeers), parse.GetValue(pending), parse.GetValue(json), parse.GetValue(postgres), parse.GetValue(nodeWorkers), parse.GetValue(only)),
            ct));

        var db = new Option<FileInfo>("--db") { Required = true };
        var child = new Command("restart-child", "Internal: opens a store and measures time to the first dispatch.") { db };
        child.Hidden = true;
        child.SetAction((parse, ct) => RestartChildAsync(parse.GetValue(db)!.FullName, ct));
        command.Subcommands.Add(child);
        command.Subcommands.Add(WorkBenchPostgres.CreateNode());
        return command;
    }

    private sealed record Settings(int N, int[] Workers, bool SkipPeers, int Pending, FileInfo? Json, string? Postgres, int NodeWorkers, string? Only);

    private static async Task<int> RunAsync(Settings settings, CancellationToken ct)
    {
        var (n, workerCounts, pending, jsonFile) = (settings.N, settings.Workers, settings.Pending, settings.Json);
        if (n < 1 || pending < 1 || settings.NodeWorkers < 1 || workerCounts.Length == 0 || workerCounts.Any(w => w < 1))
        {
            AnsiConsole.MarkupLine("[red]--n, --pending, --workers and --node-workers must be positive.[/]");
            return 2;
        }

        if (settings.Only == "postgres" && settings.Postgres is null)
        {
            AnsiConsole.MarkupLine("[red]--only postgres needs --postgres auto or a connection string.[/]");
            return 2;
        }

        var result = new JsonObject
        {
            ["benchmark"] = "work",
            ["machine"] = Machine(),
            ["n"] = n,
        };
        var table = new Table().RoundedBorder().AddColumn("workload").AddColumn(new TableColumn("figure").RightAligned()).AddColumn("note");
        if (settings.Only is null)
        {
            await SqliteWorkloadsAsync(settings, result, table, ct);
        }

        if (settings.Postgres is not null && await PostgresAsync(settings, result, table, ct) is var code and not 0)
        {
            return code;
        }

        AnsiConsole.Write(table);
        if (jsonFile is not null)
        {
            await File.WriteAllTextAsync(jsonFile.FullName, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
            AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(jsonFile.FullName)}[/]");
        }

        return 0;
    }

    private static async Task<int> PostgresAsync(Settings settings, JsonObject result, Table table, CancellationToken ct)
    {
        BenchPostgres postgres;
        try
        {
            postgres = await BenchPostgres.OpenAsync(settings.Postgres!, ct);
        }
        catch (InvalidOperationException e)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
            return 2;
        }

        var directory = Directory.CreateTempSubdirectory("converge-bench-work-pg-").FullName;
        BenchChild.WorkingDirectory = Directory.CreateDirectory(Path.Combine(directory, "cwd")).FullName;
        try
        {
            await WorkBenchPostgres.RunAsync(postgres, settings.N, settings.NodeWorkers, directory, result, table, ct);
            return 0;
        }
        catch (InvalidOperationException e) when (e.InnerException is Npgsql.NpgsqlException)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
            return 2;
        }
        finally
        {
            await postgres.DisposeAsync();
            BenchChild.RemoveScratch(directory);
        }
    }

    /// <summary>The workloads on SQLite, with the peers: throughput, full sync, latency, restart.</summary>
    private static async Task SqliteWorkloadsAsync(Settings settings, JsonObject result, Table table, CancellationToken ct)
    {
        var (n, workerCounts, skipPeers, pending) = (settings.N, settings.Workers, settings.SkipPeers, settings.Pending);
        var peers = skipPeers ? null : PeerHarness.Locate();
        if (!skipPeers && peers is null)
        {
            AnsiConsole.MarkupLine("[yellow]bench/Converge.Bench.Peers not found (run from the repository); measuring Converge only.[/]");
        }

        // Warm up first, as the peer harness does in its own process: the timed runs measure the scheduler, not the JIT.
        await ThroughputAsync(1_000, workerCounts[0], WorkDurability.Process, ct);
        var throughput = new JsonArray();
        foreach (var w in workerCounts)
        {
            var converge = await ThroughputAsync(n, w, WorkDurability.Process, ct);
            var row = new JsonObject { ["workers"] = w, ["converge"] = converge.ToJson() };
            table.AddRow($"throughput, {w} workers: Converge", Rate(converge.WorksPerSecond), $"enqueue {converge.EnqueueSeconds:F2} s + drain {converge.DrainSeconds:F2} s ({Rate(converge.DrainPerSecond)} drain)");
            double best = 0;
            if (peers is not null)
            {
                foreach (var peer in new[] { "quartz", "hangfire" })
                {
                    AnsiConsole.MarkupLine($"[grey]{peer}, {w} workers…[/]");
                    var figures = await peers.RunAsync(peer, "throughput", n, w, ct);
                    row[peer] = figures;
                    var rate = figures?["works_per_s"]?.GetValue<double>() ?? 0;
                    best = Math.Max(best, rate);
                    table.AddRow($"throughput, {w} workers: {peer}", Rate(rate), figures is null ? "failed" : $"drain {Rate(figures["drain_per_s"]!.GetValue<double>())}");
                }

                row["ratio_vs_best_peer"] = best > 0 ? Math.Round(converge.WorksPerSecond / best, 2) : null;
                table.AddRow($"ratio vs best peer, {w} workers", best > 0 ? $"{converge.WorksPerSecond / best:F1}×" : "n/a", "");
            }

            throughput.Add(row);
        }

        result["throughput"] = throughput;
        var primary = throughput[0]!.AsObject();
        result["works_per_s"] = primary["converge"]!["works_per_s"]!.DeepClone();
        result["quartz_sqlite_per_s"] = primary["quartz"]?["works_per_s"]?.DeepClone();
        result["hangfire_sqlite_per_s"] = primary["hangfire"]?["works_per_s"]?.DeepClone();
        result["ratio_vs_best_peer"] = primary["ratio_vs_best_peer"]?.DeepClone();
        result["primary_workers"] = workerCounts[0];

        var full = await ThroughputAsync(n, workerCounts[0], WorkDurability.PowerLoss, ct);
        result["full_sync_works_per_s"] = Math.Round(full.WorksPerSecond, 1);
        result["full_sync"] = full.ToJson();
        table.AddRow($"throughput, {workerCounts[0]} workers, synchronous FULL", Rate(full.WorksPerSecond), "acknowledged enqueues survive power loss");

        var latency = await LatencyAsync(1_000, workerCounts[0], ct);
        result["p50_ms"] = latency.P50;
        result["p99_ms"] = latency.P99;
        result["max_ms"] = latency.Max;
        table.AddRow("enqueue → start p50 / p99 / max", $"{latency.P50:F3} / {latency.P99:F3} / {latency.Max:F3} ms", "1,000 work items at ~100/s after 50 warm-up");
        if (peers is not null)
        {
            var quartzLatency = await peers.RunAsync("quartz", "latency", 1_000, workerCounts[0], ct);
            result["quartz_latency"] = quartzLatency;
            if (quartzLatency is not null)
            {
                table.AddRow("quartz enqueue → start p50 / p99", $"{quartzLatency["p50_ms"]} / {quartzLatency["p99_ms"]} ms", "same workload");
            }
        }

        var restart = await RestartAsync(pending, ct);
        result["restart_open_s"] = restart.OpenSeconds;
        result["rss_mb_100k"] = restart.RssMb;
        result["rss_mb_empty"] = restart.EmptyRssMb;
        result["restart_open_s_empty"] = restart.EmptyOpenSeconds;
        result["pending"] = pending;
        table.AddRow($"restart with {pending:N0} pending: open → first dispatch", $"{restart.OpenSeconds:F3} s", $"empty store: {restart.EmptyOpenSeconds:F3} s");
        table.AddRow($"process memory with {pending:N0} pending", $"{restart.RssMb:F1} MB", $"empty store: {restart.EmptyRssMb:F1} MB");
    }

    internal static string Rate(double perSecond) => $"{perSecond:N0}/s";

    private static JsonObject Machine() => new()
    {
        ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        ["cpus"] = Environment.ProcessorCount,
        ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
        ["at"] = TimeProvider.System.GetUtcNow().ToString("u", CultureInfo.InvariantCulture),
    };

    private sealed record Throughput(int N, int Workers, double EnqueueSeconds, double DrainSeconds)
    {
        public double WorksPerSecond => N / (EnqueueSeconds + DrainSeconds);

        public double DrainPerSecond => N / DrainSeconds;

        public JsonObject ToJson() => new()
        {
            ["n"] = N,
            ["workers"] = Workers,
            ["enqueue_s"] = Math.Round(EnqueueSeconds, 4),
            ["drain_s"] = Math.Round(DrainSeconds, 4),
            ["works_per_s"] = Math.Round(WorksPerSecond, 1),
            ["drain_per_s"] = Math.Round(DrainPerSecond, 1),
            ["enqueue_per_s"] = Math.Round(N / EnqueueSeconds, 1),
        };
    }

    /// <summary>N no-op work items enqueued one awaited call at a time with no scheduler running, then drained by one.</summary>
    private static async Task<Throughput> ThroughputAsync(int n, int workers, WorkDurability durability, CancellationToken ct)
    {
        var directory = Directory.CreateTempSubdirectory("converge-bench-").FullName;
        try
        {
            var db = Path.Combine(directory, "work.db");
            var enqueue = Stopwatch.StartNew();
            await using (var client = new WorkManager(new WorkManagerOptions { DatabasePath = db, EnqueueOnly = true, Durability = durability }, new WorkerRegistry()))
            {
                await client.StartAsync(ct);
                for (var i = 0; i < n; i++)
                {
                    await client.EnqueueAsync(OneTimeWorkRequest.From("noop"), ct);
                }
            }

            enqueue.Stop();
            var done = 0;
            var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var registry = new WorkerRegistry().Add("noop", _ => new NoopWorker(() =>
            {
                if (Interlocked.Increment(ref done) == n)
                {
                    all.TrySetResult();
                }
            }));
            var drain = Stopwatch.StartNew();
            await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db, MaxConcurrency = workers, Durability = durability }, registry);
            await manager.StartAsync(ct);
            await all.Task.WaitAsync(TimeSpan.FromMinutes(10), ct);
            await manager.WhenIdleAsync(ct); // the last results are committed
            drain.Stop();
            var succeeded = (await manager.GetWorkInfosAsync(WorkQuery.ForStates(WorkState.Succeeded), ct)).Count;
            if (succeeded != n)
            {
                throw new InvalidOperationException($"Expected {n} succeeded work items, found {succeeded}.");
            }

            return new Throughput(n, workers, enqueue.Elapsed.TotalSeconds, drain.Elapsed.TotalSeconds);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    private sealed record Latency(double P50, double P99, double Max);

    /// <summary>Enqueue-to-start latency, constraints met and no delay, at about 100 work items per second.</summary>
    private static async Task<Latency> LatencyAsync(int n, int workers, CancellationToken ct)
    {
        var directory = Directory.CreateTempSubdirectory("converge-bench-").FullName;
        try
        {
            var started = new System.Collections.Concurrent.ConcurrentDictionary<Guid, long>();
            var registry = new WorkerRegistry().ExecuteTask(ctx =>
            {
                started[ctx.Id] = Stopwatch.GetTimestamp();
                return Task.FromResult(WorkResult.Success());
            });
            await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = Path.Combine(directory, "work.db"), MaxConcurrency = workers }, registry);
            await manager.StartAsync(ct);
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
            var enqueuedAt = new Dictionary<Guid, long>(n);
            for (var i = 0; i < n + 50; i++)
            {
                await timer.WaitForNextTickAsync(ct);
                var request = OneTimeWorkRequest.From("probe");
                var before = Stopwatch.GetTimestamp();
                await manager.EnqueueAsync(request, ct);
                if (i >= 50)
                {
                    enqueuedAt[request.Id] = before; // the first 50 warm up and are not counted
                }
            }

            await manager.WhenIdleAsync(ct);
            var latencies = enqueuedAt.Select(p => Stopwatch.GetElapsedTime(p.Value, started[p.Key]).TotalMilliseconds).Order().ToList();
            return new Latency(
                Math.Round(Percentile(latencies, 0.50), 3),
                Math.Round(Percentile(latencies, 0.99), 3),
                Math.Round(latencies[^1], 3));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Nearest-rank percentile of sorted samples.</summary>
    private static double Percentile(List<double> sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private sealed record Restart(double OpenSeconds, double RssMb, double EmptyOpenSeconds, double EmptyRssMb);

    /// <summary>A fresh process opens a store holding <paramref name="pending"/> pending work items; time to its first dispatch, and its memory.</summary>
    private static async Task<Restart> RestartAsync(int pending, CancellationToken ct)
    {
        var directory = Directory.CreateTempSubdirectory("converge-bench-").FullName;
        try
        {
            var full = Path.Combine(directory, "full.db");
            var empty = Path.Combine(directory, "empty.db");
            await using (var client = new WorkManager(new WorkManagerOptions { DatabasePath = full, EnqueueOnly = true }, new WorkerRegistry()))
            {
                await client.StartAsync(ct);
                for (var i = 0; i < pending; i += 1_000)
                {
                    var batch = Enumerable.Range(0, Math.Min(1_000, pending - i))
                        .Select(_ => (WorkRequest)new OneTimeWorkRequestBuilder("later").SetInitialDelay(TimeSpan.FromDays(1)).Build());
                    await client.EnqueueAsync(batch, ct);
                }

                await client.EnqueueAsync(OneTimeWorkRequest.From("marker"), ct);
            }

            await using (var client = new WorkManager(new WorkManagerOptions { DatabasePath = empty, EnqueueOnly = true }, new WorkerRegistry()))
            {
                await client.StartAsync(ct);
                await client.EnqueueAsync(OneTimeWorkRequest.From("marker"), ct);
            }

            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            var (openFull, rssFull) = await RunRestartChildAsync(full, ct);
            var (openEmpty, rssEmpty) = await RunRestartChildAsync(empty, ct);
            return new Restart(openFull, rssFull, openEmpty, rssEmpty);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<(double OpenSeconds, double RssMb)> RunRestartChildAsync(string db, CancellationToken ct)
    {
        using var child = ChildProcess.StartSelf("work", "restart-child", "--db", db);
        var line = await child.WaitForLineAsync("RESULT", TimeSpan.FromMinutes(2));
        await child.Process.WaitForExitAsync(ct);
        var parts = line.Split(' ');
        return (double.Parse(parts[1], CultureInfo.InvariantCulture), double.Parse(parts[2], CultureInfo.InvariantCulture));
    }

    private static async Task<int> RestartChildAsync(string db, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var dispatched = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var registry = new WorkerRegistry().Add("marker", _ => new NoopWorker(dispatched.SetResult));
        await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, registry);
        await manager.StartAsync(ct);
        await dispatched.Task.WaitAsync(TimeSpan.FromMinutes(1), ct);
        var open = watch.Elapsed.TotalSeconds;
        await manager.WhenIdleAsync(ct);
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT {open:F4} {self.WorkingSet64 / 1024.0 / 1024.0:F1}"));
        return 0;
    }

    private sealed class NoopWorker(Action onRun) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            onRun();
            return Task.FromResult(WorkResult.Success());
        }
    }
}
