using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Converge.Work;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>
/// `work --postgres`: N no-op work items drained by two scheduler nodes (two processes) sharing one queue in
/// PostgreSQL, and for context the same N drained by one node on PostgreSQL and by one scheduler on SQLite, in the same run.
/// </summary>
/// <remarks>
/// Each drain runs in child processes (`work node`) that first warm up on a store of their own, then open the
/// store of the measurement and wait; the parent says "go" to all of them at once, so opening, migrating and the JIT
/// are outside the timing. The drain ends when every work is SUCCEEDED and committed: the parent polls the nodes' run
/// counts, then asks each to wait until idle (its last results committed). Then it checks exactly once: the nodes'
/// runs are N distinct work items, and the store holds N work items, all SUCCEEDED after one attempt.
/// </remarks>
internal static class WorkBenchPostgres
{
    /// <summary>The goal of the two-node figure, in work items drained per second.</summary>
    public const double Goal = 5_000;

    private const int EnqueueList = 500;
    private const int WarmupRoundsMin = 3;
    private const int WarmupRoundsMax = 30;

    /// <summary>A warm-up round that compiles at most this many methods (new ones or tier-ups) ends the warm-up.</summary>
    private const int WarmupSettled = 2;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromMinutes(10);

    public static Command CreateNode()
    {
        var postgres = new Option<string?>("--postgres") { Description = "The connection string of the store's database." };
        var schema = new Option<string>("--schema") { DefaultValueFactory = _ => "converge_work" };
        var db = new Option<FileInfo?>("--db") { Description = "A SQLite store instead of PostgreSQL." };
        var workers = new Option<int>("--workers") { DefaultValueFactory = _ => 8 };
        var name = new Option<string>("--name") { DefaultValueFactory = _ => "node" };
        var warmup = new Option<int>("--warmup") { Description = "Work items per warm-up round; 0: no warm-up.", DefaultValueFactory = _ => 1_000 };
        var command = new Command("node", "Internal: a scheduler node of the benchmark; warms up, opens the store, drains on 'go'.")
        {
            postgres, schema, db, workers, name, warmup,
        };
        command.Hidden = true;
        command.SetAction((parse, ct) => RunNodeAsync(
            parse.GetValue(postgres), parse.GetValue(schema)!, parse.GetValue(db)?.FullName, parse.GetValue(workers), parse.GetValue(name)!, parse.GetValue(warmup), ct));
        return command;
    }

    /// <summary>Runs the workload and adds its figures to the table and the JSON.</summary>
    public static async Task RunAsync(BenchPostgres postgres, int n, int workersPerNode, string directory, JsonObject result, Table table, CancellationToken ct)
    {
        AnsiConsole.MarkupLine($"[grey]work on PostgreSQL: {n:N0} no-op work items, {workersPerNode} workers per node; two nodes, then one, then SQLite…[/]");
        var connectionString = await postgres.CreateDatabaseAsync("work", ct);
        var two = await DrainAsync(Store.OnPostgres(connectionString, "bench_two"), n, nodes: 2, workersPerNode, directory, postgres, ct);
        var one = await DrainAsync(Store.OnPostgres(connectionString, "bench_one"), n, nodes: 1, workersPerNode, directory, postgres, ct);
        var sqlite = await DrainAsync(Store.OnSqlite(Path.Combine(directory, "bench.db")), n, nodes: 1, workersPerNode, directory, null, ct);

        result["postgres"] = new JsonObject
        {
            ["nodes"] = 2,
            ["n"] = n,
            ["workers_per_node"] = workersPerNode,
            ["drained_per_s"] = Math.Round(two.DrainPerSecond, 1),
            ["drain_s"] = Math.Round(two.DrainSeconds, 4),
            ["per_node"] = new JsonArray([.. two.PerNode.Select(c => JsonValue.Create(c))]),
            ["cpu_us_per_work"] = two.CpuJson(),
            ["one_node_cpu_us_per_work"] = one.CpuJson(),
            ["enqueue_per_s"] = Math.Round(two.EnqueuePerSecond, 1),
            ["one_node_drained_per_s"] = Math.Round(one.DrainPerSecond, 1),
            ["one_node_drain_s"] = Math.Round(one.DrainSeconds, 4),
            ["sqlite_drained_per_s"] = Math.Round(sqlite.DrainPerSecond, 1),
            ["sqlite_drain_s"] = Math.Round(sqlite.DrainSeconds, 4),
            ["two_to_one_node_ratio"] = Math.Round(two.DrainPerSecond / one.DrainPerSecond, 3),
            ["two_nodes_to_sqlite_ratio"] = Math.Round(two.DrainPerSecond / sqlite.DrainPerSecond, 3),
            ["goal_per_s"] = Goal,
            ["met"] = two.DrainPerSecond >= Goal,
            ["server"] = postgres.Description,
        };

        var split = string.Join(" + ", two.PerNode.Select(c => c.ToString("N0", CultureInfo.InvariantCulture)));
        table.AddRow(
            $"PostgreSQL, 2 nodes × {workersPerNode} workers: drained",
            WorkBench.Rate(two.DrainPerSecond),
            $"{n:N0} work items in {two.DrainSeconds:F3} s, per node {split}; goal {Goal:N0}/s {(two.DrainPerSecond >= Goal ? "met" : "[red]not met[/]")}; CPU per item {two.CpuText()}");
        table.AddRow(
            $"PostgreSQL, 1 node × {workersPerNode} workers: drained",
            WorkBench.Rate(one.DrainPerSecond),
            $"{one.DrainSeconds:F3} s; 2 nodes ÷ 1 node = {two.DrainPerSecond / one.DrainPerSecond:F2}×; CPU per item {one.CpuText()}");
        table.AddRow(
            $"SQLite, {workersPerNode} workers: drained",
            WorkBench.Rate(sqlite.DrainPerSecond),
            $"{sqlite.DrainSeconds:F3} s; 2 PostgreSQL nodes ÷ SQLite = {two.DrainPerSecond / sqlite.DrainPerSecond:F2}×");
        table.AddRow(
            "PostgreSQL enqueue, lists of 500",
            WorkBench.Rate(two.EnqueuePerSecond),
            $"one process, before the drain (SQLite: {WorkBench.Rate(sqlite.EnqueuePerSecond)})");
    }

    private sealed record Store(string[] Args, Func<WorkManagerOptions, WorkManagerOptions> Configure, string? ConnectionString = null, string? Schema = null)
    {
        public static Store OnPostgres(string connectionString, string schema) =>
            new(["--postgres", connectionString, "--schema", schema], o => o.UsePostgreSql(connectionString, s => s.Schema = schema), connectionString, schema);

        public static Store OnSqlite(string path) => new(["--db", path], o =>
        {
            o.DatabasePath = path;
            return o;
        });

        /// <summary>After the enqueue: statistics of the full queue, as a running database would have (autovacuum takes them on its own schedule).</summary>
        public async Task AnalyzeAsync(CancellationToken ct)
        {
            if (ConnectionString is not null)
            {
                await ExecuteAsync($"ANALYZE {Schema}.work", ct);
            }
        }

        /// <summary>After the drain: drops its schemas and the nodes' warm-up schemas, so that autovacuum does not clean them up during the next drain.</summary>
        public async Task DropAsync(IEnumerable<string> nodeNames, CancellationToken ct)
        {
            if (ConnectionString is not null)
            {
                await ExecuteAsync(string.Join("; ", nodeNames.Select(name => $"DROP SCHEMA IF EXISTS {Schema}_warm_{name} CASCADE").Append($"DROP SCHEMA IF EXISTS {Schema} CASCADE")), ct);
            }
        }

        private async Task ExecuteAsync(string sql, CancellationToken ct)
        {
            await using var connection = new Npgsql.NpgsqlConnection(ConnectionString);
            await connection.OpenAsync(ct);
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync(ct);
        }
    }

    private sealed record Drain(int N, double EnqueueSeconds, double DrainSeconds, int[] PerNode, double[] NodeCpuSeconds, double PostgresCpuSeconds)
    {
        public double DrainPerSecond => N / DrainSeconds;

        public double EnqueuePerSecond => N / EnqueueSeconds;

        /// <summary>CPU microseconds per work item drained: each node's process, and the private server's (NaN for a given server).</summary>
        public JsonObject CpuJson() => new()
        {
            ["nodes"] = new JsonArray([.. NodeCpuSeconds.Select(c => JsonValue.Create(Math.Round(c * 1e6 / N, 1)))]),
            ["postgres"] = double.IsNaN(PostgresCpuSeconds) ? null : Math.Round(PostgresCpuSeconds * 1e6 / N, 1),
        };

        public string CpuText() =>
            $"{string.Join(" + ", NodeCpuSeconds.Select(c => (c * 1e6 / N).ToString("F0", CultureInfo.InvariantCulture)))} µs in the node{(NodeCpuSeconds.Length > 1 ? "s" : "")}" +
            (double.IsNaN(PostgresCpuSeconds) ? "" : $", {PostgresCpuSeconds * 1e6 / N:F0} µs in PostgreSQL");
    }

    private static async Task<Drain> DrainAsync(Store store, int n, int nodes, int workers, string directory, BenchPostgres? postgres, CancellationToken ct)
    {
        var children = new List<BenchChild>();
        var names = Enumerable.Range(1, nodes).Select(i => $"node{i}_{Environment.ProcessId}").ToList();
        try
        {
            // The nodes warm up (side by side) on stores of their own before the enqueue.
            foreach (var name in names)
            {
                children.Add(BenchChild.Start([
                    "work", "node", .. store.Args, "--workers", workers.ToString(CultureInfo.InvariantCulture), "--name", name]));
            }

            var rounds = new List<string>();
            foreach (var child in children)
            {
                rounds.Add(await child.WaitForAsync("WARM", TimeSpan.FromMinutes(5)));
            }

            AnsiConsole.MarkupLine($"[grey]  {nodes} node{(nodes > 1 ? "s" : "")} on {Markup.Escape(store.Args[0][2..])} warmed up ({string.Join(", ", rounds)} rounds of 1,000 work items until the JIT settled); enqueueing {n:N0}…[/]");

            var enqueue = Stopwatch.StartNew();
            await using (var client = new WorkManager(store.Configure(new WorkManagerOptions { EnqueueOnly = true }), new WorkerRegistry()))
            {
                await client.StartAsync(ct);
                for (var i = 0; i < n; i += EnqueueList)
                {
                    await client.EnqueueAsync([.. Enumerable.Range(0, Math.Min(EnqueueList, n - i)).Select(_ => (WorkRequest)OneTimeWorkRequest.From("noop"))], ct);
                }
            }

            enqueue.Stop();
            await store.AnalyzeAsync(ct);
            foreach (var child in children)
            {
                await child.SendAsync("open");
            }

            var cpu = children.ConvertAll(c => LiveBenchShared.CpuSeconds(c.Id));
            var postgresCpu = postgres?.CpuSeconds() ?? double.NaN;
            var start = Stopwatch.GetTimestamp();
            foreach (var child in children)
            {
                await child.WriteAsync("go");
            }

            foreach (var child in children)
            {
                await child.ReadOkAsync("go");
            }

            var counts = new int[nodes];
            var deadline = Stopwatch.StartNew();
            while (counts.Sum() < n)
            {
                if (deadline.Elapsed > DrainTimeout)
                {
                    throw new InvalidOperationException($"The nodes ran {counts.Sum():N0} of {n:N0} work items in {DrainTimeout.TotalMinutes} minutes.");
                }

                await Task.Delay(Poll, ct);
                for (var i = 0; i < nodes; i++)
                {
                    counts[i] = int.Parse((await children[i].SendAsync("count"))[0], CultureInfo.InvariantCulture);
                }
            }

            // Idle: the node runs nothing and its last results are committed.
            long end = 0;
            for (var i = 0; i < nodes; i++)
            {
                var idle = await children[i].SendAsync("idle");
                end = Math.Max(end, long.Parse(idle[0], CultureInfo.InvariantCulture));
                counts[i] = int.Parse(idle[1], CultureInfo.InvariantCulture);
            }

            var drain = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
            var nodeCpu = children.Select((c, i) => LiveBenchShared.CpuSeconds(c.Id) - cpu[i]).ToArray();
            postgresCpu = (postgres?.CpuSeconds() ?? double.NaN) - postgresCpu;
            await CheckExactlyOnceAsync(store, n, children, counts, directory, ct);
            return new Drain(n, enqueue.Elapsed.TotalSeconds, drain, counts, nodeCpu, postgresCpu);
        }
        finally
        {
            foreach (var child in children)
            {
                await child.DisposeAsync();
            }

            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Npgsql.NpgsqlConnection.ClearAllPools();
            await store.DropAsync(names, CancellationToken.None);
        }
    }

    /// <summary>Every work ran once, on one node, and is SUCCEEDED after one attempt; throws otherwise.</summary>
    private static async Task CheckExactlyOnceAsync(Store store, int n, List<BenchChild> children, int[] counts, string directory, CancellationToken ct)
    {
        var problems = new List<string>();
        if (counts.Sum() != n)
        {
            problems.Add($"the nodes report {counts.Sum():N0} runs ({string.Join(" + ", counts)}), not {n:N0}");
        }

        var ran = new Dictionary<Guid, int>();
        for (var i = 0; i < children.Count; i++)
        {
            var file = Path.Combine(directory, $"ran-{i}.txt");
            await children[i].SendAsync("ids " + file);
            foreach (var line in await File.ReadAllLinesAsync(file, ct))
            {
                var id = Guid.Parse(line, CultureInfo.InvariantCulture);
                ran[id] = ran.GetValueOrDefault(id) + 1;
            }
        }

        var twice = ran.Count(p => p.Value > 1);
        if (twice > 0)
        {
            problems.Add($"{twice:N0} work items ran more than once");
        }

        await using (var reader = new WorkManager(store.Configure(new WorkManagerOptions { EnqueueOnly = true }), new WorkerRegistry()))
        {
            var all = await reader.GetWorkInfosAsync(WorkQuery.All, ct);
            var succeeded = all.Count(w => w.State == WorkState.Succeeded);
            if (all.Count != n || succeeded != n)
            {
                problems.Add($"the store holds {all.Count:N0} work items, {succeeded:N0} of them SUCCEEDED, not {n:N0}");
            }

            var retried = all.Count(w => w.RunAttemptCount != 1);
            if (retried > 0)
            {
                problems.Add($"{retried:N0} work items have a run attempt count other than 1");
            }

            var missing = all.Count(w => !ran.ContainsKey(w.Id));
            if (missing > 0)
            {
                problems.Add($"{missing:N0} work items of the store were not run by any node");
            }
        }

        if (problems.Count > 0)
        {
            throw new InvalidOperationException("Not exactly once: " + string.Join("; ", problems) + ".");
        }
    }

    // ---- the node process ----

    private static async Task<int> RunNodeAsync(string? postgres, string schema, string? db, int workers, string name, int warmup, CancellationToken ct)
    {
        if ((postgres is null) == (db is null))
        {
            await Console.Error.WriteLineAsync("Give either --postgres or --db.");
            return 2;
        }

        WorkManagerOptions Options(string suffix) => postgres is not null
            ? new WorkManagerOptions { MaxConcurrency = workers }.UsePostgreSql(postgres, s =>
            {
                s.Schema = schema + suffix;
                s.NodeName = name;
            })
            : new WorkManagerOptions { MaxConcurrency = workers, DatabasePath = db + suffix };

        // Warm-up: rounds of the same drain on a store of its own, until the JIT has settled (a round compiles almost
        // nothing new: the hot code is at its final tier), so the timed drain runs the code a long-running node would.
        var rounds = 0;
        if (warmup > 0)
        {
            var warmRuns = new Runs();
            await using (var manager = new WorkManager(Options("_warm_" + name), warmRuns.Registry()))
            {
                await manager.StartAsync(ct);
                var compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
                while (rounds < WarmupRoundsMax)
                {
                    rounds++;
                    for (var i = 0; i < warmup; i += EnqueueList)
                    {
                        await manager.EnqueueAsync([.. Enumerable.Range(0, Math.Min(EnqueueList, warmup - i)).Select(_ => (WorkRequest)OneTimeWorkRequest.From("noop"))], ct);
                    }

                    while (warmRuns.Count < rounds * warmup)
                    {
                        await Task.Delay(5, ct);
                    }

                    await manager.WhenIdleAsync(ct);
                    var now = System.Runtime.JitInfo.GetCompiledMethodCount();
                    if (rounds >= WarmupRoundsMin && now - compiled <= WarmupSettled)
                    {
                        break;
                    }

                    compiled = now;
                }
            }

            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"WARM {rounds}"));
        var runs = new Runs();
        WorkManager? node = null;
        try
        {
            await LiveBenchChildren.CommandLoopAsync(
                async (a, token) =>
                {
                    switch (a[0])
                    {
                        case "open":
                            // Opens (for PostgreSQL: connects, checks the schema); nothing runs before "go".
                            node = new WorkManager(Options(""), runs.Registry());
                            return "";
                        case "go":
                            await node!.StartAsync(token);
                            return "";
                        case "count":
                            return runs.Count.ToString(CultureInfo.InvariantCulture);
                        case "idle":
                            await node!.WhenIdleAsync(token);
                            return string.Create(CultureInfo.InvariantCulture, $"{Stopwatch.GetTimestamp()} {runs.Count}");
                        case "ids":
                            await File.WriteAllLinesAsync(a[1], runs.Ids.Select(id => id.ToString()), token);
                            return "";
                        default:
                            throw new ArgumentException("Unknown command " + a[0]);
                    }
                },
                ct);
        }
        finally
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }
        }

        return 0;
    }

    /// <summary>The runs of a node: how many, and which work items.</summary>
    private sealed class Runs
    {
        private int _count;

        public ConcurrentQueue<Guid> Ids { get; } = new();

        public int Count => Volatile.Read(ref _count);

        public WorkerRegistry Registry() => new WorkerRegistry().Add("noop", _ => new Worker(this));

        private void Ran(Guid id)
        {
            Ids.Enqueue(id);
            Interlocked.Increment(ref _count);
        }

        private sealed class Worker(Runs runs) : IWorker
        {
            public Task<WorkResult> DoWorkAsync(WorkContext context)
            {
                runs.Ran(context.Id);
                return Task.FromResult(WorkResult.Success());
            }
        }
    }
}
