using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;
using Npgsql;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>`sync`: bulk sync, conflict storm, local writes and incremental pull, with a server and two devices in separate processes.</summary>
internal static class SyncBench
{
    private const int LargeN = 100_000;
    private const int WriteBatch = 500;
    private const int StormDocuments = 1_000;
    private const int WarmupRounds = 4;
    private const int WarmupDocuments = 5_000;
    private const int BulkRepeats = 5;
    private const int StormRepeats = 3;

    /// <summary>The bulk sync through PostgreSQL must reach this share of SQLite's documents per second.</summary>
    private const double PostgresGoalRatio = 0.5;

    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Documents in the bulk sync.", DefaultValueFactory = _ => 10_000 };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var large = new Option<bool>("--skip-large") { Description = $"Skip the bulk sync of {LargeN:N0} documents." };
        var scope = new Option<int>("--incremental-scope") { Description = "Documents in the large scope of the incremental pull.", DefaultValueFactory = _ => 1_000_000 };
        var only = new Option<string[]>("--only") { Description = "Run only these workloads: local, bulk, storm, incremental.", AllowMultipleArgumentsPerToken = true };
        only.AcceptOnlyFromAmong("local", "bulk", "storm", "incremental");
        var postgres = BenchPostgres.CreateOption(
            "Also run the bulk sync and the conflict storm with the server on PostgreSQL, in the same run as on SQLite (the bulk runs of the two alternate), and compare; the local writes have no server, and the incremental pull stays on SQLite.");
        var command = new Command("sync", "Sync throughput, conflict storm, local writes and incremental pull, with a server and two devices in their own processes.")
        {
            n, json, large, scope, only, postgres,
        };
        command.SetAction((parse, ct) => RunAsync(parse.GetValue(n), parse.GetValue(json), parse.GetValue(large), parse.GetValue(scope), parse.GetValue(only) is { Length: > 0 } o ? o : null, parse.GetValue(postgres), ct));
        command.Subcommands.Add(SyncBenchChildren.CreateServer());
        command.Subcommands.Add(SyncBenchChildren.CreateDevice());
        return command;
    }

    private static async Task<int> RunAsync(int n, FileInfo? jsonFile, bool skipLarge, int incrementalScope, string[]? only, string? postgresOption, CancellationToken ct)
    {
        if (n < 1 || incrementalScope < 1_000)
        {
            AnsiConsole.MarkupLine("[red]--n must be positive and --incremental-scope at least 1,000.[/]");
            return 2;
        }

        var result = new JsonObject
        {
            ["benchmark"] = "sync",
            ["machine"] = Machine(),
            ["n"] = n,
        };
        var table = new Table().RoundedBorder().AddColumn("workload").AddColumn(new TableColumn("figure").RightAligned()).AddColumn("note");
        BenchPostgres? postgres = null;
        if (postgresOption is not null)
        {
            try
            {
                postgres = await BenchPostgres.OpenAsync(postgresOption, ct);
            }
            catch (InvalidOperationException e)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
                return 2;
            }

            result["postgres"] = postgres.Description;
        }

        var directory = Directory.CreateTempSubdirectory("converge-bench-sync-").FullName;
        BenchChild.WorkingDirectory = Directory.CreateDirectory(Path.Combine(directory, "cwd")).FullName;
        try
        {
            bool Runs(string workload) => only is null || only.Contains(workload);
            if (Runs("local"))
            {
                await LocalAsync(directory, result, table, ct);
            }

            if (Runs("bulk"))
            {
                await BulksAsync(directory, skipLarge || n == LargeN ? [n] : [n, LargeN], n, postgres, result, table, ct);
            }

            if (Runs("storm"))
            {
                await StormsAsync(directory, postgres, result, table, ct);
            }

            if (Runs("incremental"))
            {
                await IncrementalAsync(directory, incrementalScope, result, table, ct);
            }
        }
        catch (InvalidOperationException e) when (postgres is not null && e.InnerException is NpgsqlException)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
            return 2;
        }
        finally
        {
            BenchChild.RemoveScratch(directory);

            if (postgres is not null)
            {
                await postgres.DisposeAsync();
            }
        }

        AnsiConsole.Write(table);
        if (jsonFile is not null)
        {
            await File.WriteAllTextAsync(jsonFile.FullName, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
            AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(jsonFile.FullName)}[/]");
        }

        return 0;
    }

    private static async Task LocalAsync(string directory, JsonObject result, Table table, CancellationToken ct)
    {
        AnsiConsole.MarkupLine("[grey]local writes…[/]");
        var local = await SyncBenchLocal.RunAsync(directory, ct);
        result["single_writes_per_s"] = Math.Round(local.SinglePerSecond, 1);
        result["batched_docs_per_s"] = Math.Round(local.BatchedPerSecond, 1);
        result["raw_sqlite_ratio"] = Math.Round(Math.Max(local.SingleRatio, local.BatchedRatio), 2);
        result["local_writes"] = local.ToJson();
        table.AddRow("local single writes (one transaction each)", Rate(local.SinglePerSecond), $"{local.SingleRatio:F2}× raw SQLite ({Rate(local.RawSinglePerSecond)})");
        table.AddRow($"local batched writes (batches of {WriteBatch})", Rate(local.BatchedPerSecond), $"{local.BatchedRatio:F2}× raw SQLite ({Rate(local.RawBatchedPerSecond)})");
        table.AddRow("  the store's SQL alone, batched", Rate(local.StoreSqlBatchedPerSecond), "same statements and rows, prepared, text made up front");
    }

    private static async Task BulksAsync(string directory, int[] sizes, int n, BenchPostgres? postgres, JsonObject result, Table table, CancellationToken ct)
    {
        var bulk = new JsonArray();
        var postgresBulk = new JsonArray();
        double peak = 0, postgresPeak = 0;
        foreach (var size in sizes)
        {
            AnsiConsole.MarkupLine($"[grey]bulk sync of {size:N0} documents{(postgres is null ? "" : ", on SQLite and on PostgreSQL, runs alternating")}…[/]");
            var folder = Path.Combine(directory, $"bulk-{size}");
            List<Backend> backends = [Backend.Sqlite(folder)];
            if (postgres is not null)
            {
                backends.Add(Backend.OnPostgres(folder, await postgres.CreateDatabaseAsync($"bulk_{size}", ct)));
            }

            var all = await BulkAsync(folder, size, backends, ct);
            var figures = all[0];
            bulk.Add(figures.ToJson());
            table.AddRow(
                $"bulk sync {size:N0}: end to end",
                Rate(figures.DocsPerSecond),
                $"push {figures.PushSeconds:F3} s, pull {figures.PullSeconds:F3} s, total {figures.TotalSeconds:F3} s" + (figures.RunTotals.Length > 1 ? $" (median of {string.Join(" / ", figures.RunTotals.Select(t => t.ToString("F3", CultureInfo.InvariantCulture)))})" : ""));
            table.AddRow($"bulk sync {size:N0}: server peak memory", $"{figures.ServerPeakRssMb:F1} MB", $"offline writes on A: {Rate(figures.OfflineWritesPerSecond)}");
            if (size == n)
            {
                result["push_s"] = Math.Round(figures.PushSeconds, 4);
                result["pull_s"] = Math.Round(figures.PullSeconds, 4);
                result["total_s"] = Math.Round(figures.TotalSeconds, 4);
                result["docs_per_s"] = Math.Round(figures.DocsPerSecond, 1);
            }

            peak = Math.Max(peak, figures.ServerPeakRssMb);
            if (postgres is not null)
            {
                var pg = all[1];
                var ratio = pg.DocsPerSecond / figures.DocsPerSecond;

                // Run i of each store ran one after the other, so their ratio is the least disturbed by the machine's load.
                var paired = figures.RunTotals.Zip(pg.RunTotals, (sqlite, p) => sqlite / p).Order().ToArray();
                var pgJson = pg.ToJson();
                pgJson["postgres_to_sqlite_ratio"] = Math.Round(ratio, 3);
                pgJson["paired_run_ratios"] = new JsonArray([.. paired.Select(r => (JsonNode)Math.Round(r, 3))]);
                postgresBulk.Add(pgJson);
                table.AddRow(
                    $"bulk sync {size:N0} on PostgreSQL: end to end",
                    Rate(pg.DocsPerSecond),
                    $"push {pg.PushSeconds:F3} s, pull {pg.PullSeconds:F3} s, total {pg.TotalSeconds:F3} s" + (pg.RunTotals.Length > 1 ? $" (median of {string.Join(" / ", pg.RunTotals.Select(t => t.ToString("F3", CultureInfo.InvariantCulture)))})" : ""));
                table.AddRow(
                    $"bulk sync {size:N0}: PostgreSQL / SQLite",
                    $"{ratio:F2}×",
                    (size == n ? (ratio >= PostgresGoalRatio ? $"≥ {PostgresGoalRatio:F1}× [green]met[/]" : $"≥ {PostgresGoalRatio:F1}× [red]not met[/]") + "; " : "")
                        + (paired.Length > 1 ? $"run by run {paired[0]:F2}–{paired[^1]:F2}×; " : "")
                        + $"PostgreSQL node peak memory {pg.ServerPeakRssMb:F1} MB");
                if (size == n)
                {
                    result["postgres_push_s"] = Math.Round(pg.PushSeconds, 4);
                    result["postgres_pull_s"] = Math.Round(pg.PullSeconds, 4);
                    result["postgres_total_s"] = Math.Round(pg.TotalSeconds, 4);
                    result["postgres_docs_per_s"] = Math.Round(pg.DocsPerSecond, 1);
                    result["postgres_to_sqlite_ratio"] = Math.Round(ratio, 3);
                    result["postgres_goal_ratio"] = PostgresGoalRatio;
                    result["postgres_met"] = ratio >= PostgresGoalRatio;
                }

                postgresPeak = Math.Max(postgresPeak, pg.ServerPeakRssMb);
            }
        }

        result["server_peak_rss_mb"] = Math.Round(peak, 1);
        result["bulk"] = bulk;
        if (postgres is not null)
        {
            result["postgres_server_peak_rss_mb"] = Math.Round(postgresPeak, 1);
            result["postgres_bulk"] = postgresBulk;
        }
    }

    private static async Task StormsAsync(string directory, BenchPostgres? postgres, JsonObject result, Table table, CancellationToken ct)
    {
        AnsiConsole.MarkupLine("[grey]conflict storm…[/]");
        var folder = Path.Combine(directory, "storm");
        await StormsOnAsync(folder, Backend.Sqlite(folder), "", result, table, ct);
        if (postgres is not null)
        {
            AnsiConsole.MarkupLine("[grey]conflict storm on PostgreSQL…[/]");
            await StormsOnAsync(folder, Backend.OnPostgres(folder, await postgres.CreateDatabaseAsync("storm", ct)), "postgres_", result, table, ct);
        }
    }

    private static async Task StormsOnAsync(string folder, Backend backend, string prefix, JsonObject result, Table table, CancellationToken ct)
    {
        var storm = await StormAsync(folder, backend, ct);
        result[prefix + "conflict_converge_s"] = Math.Round(storm.Max(s => s.ConvergeSeconds), 4);
        result[prefix + "unresolved"] = storm.Where(s => s.Policy != "Manual").Sum(s => s.ServerOpenConflicts);
        result[prefix + "storm"] = new JsonArray([.. storm.Select(s => (JsonNode)s.ToJson())]);
        foreach (var s in storm)
        {
            table.AddRow(
                $"conflict storm, {s.Policy}" + (backend.Postgres is null ? "" : " on PostgreSQL"),
                $"{s.ConvergeSeconds:F3} s",
                $"median of {string.Join(" / ", s.RunSeconds.Select(t => t.ToString("F3", CultureInfo.InvariantCulture)))}; {(s.Identical ? "identical" : "[red]DIFFERENT[/]")}, titles {(s.TitlesAsPolicy ? "as policy" : "[red]not as policy[/]")}, other field {(s.OtherMerged ? "merged" : "[red]lost[/]")}, {s.ServerOpenConflicts} open conflicts");
        }
    }

    private static async Task IncrementalAsync(string directory, int incrementalScope, JsonObject result, Table table, CancellationToken ct)
    {
        AnsiConsole.MarkupLine($"[grey]incremental pull (scopes of 1,000 and {incrementalScope:N0} documents)…[/]");
        var incremental = await SyncBenchIncremental.RunAsync(Path.Combine(directory, "incremental"), incrementalScope, ct);
        result["incremental_pull_ratio"] = Math.Round(incremental.Ratio, 3);
        result["incremental"] = incremental.ToJson();
        table.AddRow(
            "incremental pull of 10 changes",
            $"{incremental.Ratio:F2}×",
            $"median {incremental.LargeMs:F2} ms from {incrementalScope:N0} docs vs {incremental.SmallMs:F2} ms from 1,000 (load {incremental.LoadSeconds:F0} s)");
    }

    internal static string Rate(double perSecond) => $"{perSecond:N0}/s";

    internal static double Seconds(string from, string to) =>
        Stopwatch.GetElapsedTime(long.Parse(from, CultureInfo.InvariantCulture), long.Parse(to, CultureInfo.InvariantCulture)).TotalSeconds;

    /// <summary>A document's value as canonical JSON: members in ordinal order, so replicas compare whatever order their fields came in.</summary>
    internal static string Canonical(JsonNode? node) => Sort(node)?.ToJsonString() ?? "null";

    private static JsonNode? Sort(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sort(p.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Sort)]),
        null => null,
        _ => node.DeepClone(),
    };

    private static JsonObject Machine() => new()
    {
        ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        ["cpus"] = Environment.ProcessorCount,
        ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
        ["at"] = TimeProvider.System.GetUtcNow().ToString("u", CultureInfo.InvariantCulture),
    };

    // ---- bulk sync ----

    private sealed record Bulk(int N, double OfflineWriteSeconds, double PushSeconds, double PullSeconds, double TotalSeconds, double ServerPeakRssMb, int PullRounds, double[] RunTotals)
    {
        public double DocsPerSecond => N / TotalSeconds;

        public double OfflineWritesPerSecond => N / OfflineWriteSeconds;

        public JsonObject ToJson() => new()
        {
            ["n"] = N,
            ["offline_write_s"] = Math.Round(OfflineWriteSeconds, 4),
            ["push_s"] = Math.Round(PushSeconds, 4),
            ["pull_s"] = Math.Round(PullSeconds, 4),
            ["total_s"] = Math.Round(TotalSeconds, 4),
            ["docs_per_s"] = Math.Round(DocsPerSecond, 1),
            ["server_peak_rss_mb"] = Math.Round(ServerPeakRssMb, 1),
            ["pull_rounds"] = PullRounds,
            ["runs_total_s"] = new JsonArray([.. RunTotals.Select(t => (JsonNode)Math.Round(t, 4))]),
        };
    }

    /// <summary>A store for the benchmark's server: a SQLite file, or a PostgreSQL database.</summary>
    private sealed record Backend(string Name, string[] ServerArgs, string? Postgres)
    {
        public static Backend Sqlite(string directory) => new("sqlite", ["--db", Path.Combine(directory, "server.db")], null);

        public static Backend OnPostgres(string directory, string connectionString) =>
            new("postgresql", ["--db", Path.Combine(directory, "unused.db"), "--postgres", connectionString], connectionString);
    }

    /// <summary>
    /// Per store: device A writes N documents offline in batches of 500; timed, A syncs while B, empty, pulls until it
    /// holds all N. With several stores, each has its own server and devices, and their runs alternate.
    /// </summary>
    private static async Task<Bulk[]> BulkAsync(string directory, int n, IReadOnlyList<Backend> backends, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        var children = new List<BenchChild>();
        try
        {
            var trios = new List<(BenchChild Server, BenchChild A, BenchChild B)>();
            foreach (var backend in backends)
            {
                var server = BenchChild.Start(["sync", "server", .. backend.ServerArgs]);
                children.Add(server);
                var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
                var a = BenchChild.Start("sync", "device");
                children.Add(a);
                var b = BenchChild.Start("sync", "device");
                children.Add(b);
                await a.SendAsync($"open a {Path.Combine(directory, backend.Name + "-a.db")} {url} bulk");
                await b.SendAsync($"open b {Path.Combine(directory, backend.Name + "-b.db")} {url} bulk");
                trios.Add((server, a, b));
            }

            // Warm-up, so no timed step runs code the JIT has not optimized yet in any of the three processes: the runtime
            // moves hot methods to optimized code only after they ran a while, in the background.
            foreach (var (_, a, b) in trios)
            {
                for (var round = 0; round < WarmupRounds; round++)
                {
                    await a.SendAsync($"write a warmup{round} 0 {WarmupDocuments} {WriteBatch}");
                    await a.SendAsync("sync a");
                    await b.SendAsync($"pull-until b {WarmupDocuments}");
                    await Task.Delay(200, ct);
                }
            }

            // A short run is at the mercy of one stalled write on a shared machine: it is repeated, each time with new
            // documents in a collection of their own, and the median taken. The stores take turns, the first of one
            // round going last in the next, so that a slow minute of the machine falls on both.
            var runs = backends.Select(_ => new List<Bulk>()).ToArray();
            for (var run = 0; run < (n <= 20_000 ? BulkRepeats : 1); run++)
            {
                var order = Enumerable.Range(0, trios.Count);
                foreach (var k in run % 2 == 0 ? order : order.Reverse())
                {
                    runs[k].Add(await BulkRunAsync(trios[k].A, trios[k].B, "docs" + run, n, ct));
                }
            }

            return [.. trios.Select((trio, k) => runs[k].OrderBy(r => r.TotalSeconds).ElementAt(runs[k].Count / 2) with
            {
                ServerPeakRssMb = trio.Server.PeakRssMb(),
                RunTotals = [.. runs[k].Select(r => r.TotalSeconds)],
            })];
        }
        finally
        {
            for (var i = children.Count - 1; i >= 0; i--)
            {
                await children[i].DisposeAsync();
            }
        }
    }

    /// <summary>One timed bulk sync: A writes N documents offline to a new collection, then syncs while B pulls them.</summary>
    private static async Task<Bulk> BulkRunAsync(BenchChild a, BenchChild b, string collection, int n, CancellationToken ct)
    {
        var write = await a.SendAsync($"write a {collection} 0 {n} {WriteBatch}");

        // The writes were made offline, earlier: their store's background checkpoint is not part of the sync.
        await Task.Delay(1_000, ct);

        // Timed: A syncs, and B pulls at the same time, round after round, until it holds all N: the pages B gets are
        // what A's pushes have committed so far.
        var pulling = b.SendAsync($"pull-until b {n}");
        var push = await a.SendAsync("sync a");
        var pull = await pulling;
        var count = int.Parse((await b.SendAsync($"count b {collection}"))[0], CultureInfo.InvariantCulture);
        if (count != n || int.Parse(push[2], CultureInfo.InvariantCulture) != n)
        {
            throw new InvalidOperationException($"Bulk sync: A pushed {push[2]} and B holds {count} documents; expected {n}.");
        }

        // Let the stores' background checkpoints of this run finish before the next.
        await Task.Delay(1_000, ct);
        return new Bulk(
            n,
            Seconds(write[0], write[1]),
            Seconds(push[0], push[5]),
            Seconds(pull[0], pull[1]),
            Seconds(push[0], pull[1]),
            0,
            int.Parse(pull[2], CultureInfo.InvariantCulture),
            []);
    }

    // ---- conflict storm ----

    private sealed record Storm(string Policy, double ConvergeSeconds, bool Identical, bool TitlesAsPolicy, bool OtherMerged, int ServerOpenConflicts, int InboxA, int InboxB, double[] RunSeconds)
    {
        public JsonObject ToJson() => new()
        {
            ["policy"] = Policy,
            ["converge_s"] = Math.Round(ConvergeSeconds, 4),
            ["runs_s"] = new JsonArray([.. RunSeconds.Select(t => (JsonNode)Math.Round(t, 4))]),
            ["identical"] = Identical,
            ["titles_as_policy"] = TitlesAsPolicy,
            ["other_field_merged"] = OtherMerged,
            ["server_open_conflicts"] = ServerOpenConflicts,
            ["inbox_a"] = InboxA,
            ["inbox_b"] = InboxB,
        };
    }

    /// <summary>
    /// Per policy: A and B share 1,000 synced documents, go offline, both edit every title (A also the priority), A syncs,
    /// then B; the time runs from the start of B's sync until A, having pulled B's changes, holds the same as B and the server.
    /// Three storms per policy; the median time, and every check must hold in all three.
    /// </summary>
    private static async Task<List<Storm>> StormAsync(string directory, Backend backend, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        await using var server = BenchChild.Start(["sync", "server", .. backend.ServerArgs]);
        var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var a = BenchChild.Start("sync", "device");
        await using var b = BenchChild.Start("sync", "device");
        var runs = new List<Storm>();

        // A warm-up storm of each policy, then each policy in turn, three times over; every storm on a scope and clients
        // of its own.
        var rounds = new List<(string Policy, int Run)>(SyncBenchChildren.StormPolicies.Select(p => (p.Name, -1)));
        for (var run = 0; run < StormRepeats; run++)
        {
            rounds.AddRange(SyncBenchChildren.StormPolicies.Select(p => (p.Name, run)));
        }

        foreach (var (policy, run) in rounds)
        {
            var collection = SyncBenchChildren.StormCollection(policy);
            var scope = $"{collection}-{run}";
            var name = $"{policy}-{run}";
            await a.SendAsync($"open {name} {Path.Combine(directory, backend.Name + "-" + name + "-a.db")} {url} {scope}");
            await b.SendAsync($"open {name} {Path.Combine(directory, backend.Name + "-" + name + "-b.db")} {url} {scope}");
            await a.SendAsync($"write {name} {collection} 0 {StormDocuments} {WriteBatch}");
            await a.SendAsync($"sync {name}");
            await b.SendAsync($"sync {name}");

            // Offline on both: A edits the titles and the priority, then B edits the titles a moment later, so B's
            // edits carry the later timestamps.
            await a.SendAsync($"edit {name} {collection} {StormDocuments} A 1");
            await Task.Delay(5, ct);
            await b.SendAsync($"edit {name} {collection} {StormDocuments} B 0");
            await a.SendAsync($"sync {name}");
            var second = await b.SendAsync($"sync {name}");
            var last = await a.SendAsync($"sync {name}");
            var seconds = Seconds(second[0], last[1]);

            var dumpA = Path.Combine(directory, backend.Name + "-" + name + "-a.txt");
            var dumpB = Path.Combine(directory, backend.Name + "-" + name + "-b.txt");
            var inboxA = int.Parse((await a.SendAsync($"dump {name} {collection} {dumpA}"))[1], CultureInfo.InvariantCulture);
            var inboxB = int.Parse((await b.SendAsync($"dump {name} {collection} {dumpB}"))[1], CultureInfo.InvariantCulture);
            var (serverDocs, serverConflicts) = backend.Postgres is { } cs
                ? await ReadPostgresAsync(cs, scope, collection, ct)
                : ReadServer(backend.ServerArgs[1], scope, collection);
            var docsA = ReadDump(dumpA);
            var docsB = ReadDump(dumpB);
            var identical = docsA.Count == StormDocuments && docsA.SequenceEqual(docsB) && docsA.SequenceEqual(serverDocs);
            var titles = true;
            var other = true;
            foreach (var (id, json) in serverDocs)
            {
                var doc = JsonNode.Parse(json)!.AsObject();
                var title = doc["title"]!.GetValue<string>();
                string a1 = "A " + id, b1 = "B " + id;
                var expected = policy switch
                {
                    "ServerWins" or "Manual" => a1,
                    "Custom" => SyncBenchChildren.CustomTitle(a1, b1),
                    _ => b1, // LastWriterWins (B's edits are later), ClientWins (B's push came second)
                };
                titles &= title == expected;
                other &= doc["priority"]!.GetValue<int>() == 2;
            }

            await a.SendAsync($"close {name}");
            await b.SendAsync($"close {name}");
            if (run >= 0)
            {
                runs.Add(new Storm(policy, seconds, identical, titles, other, serverConflicts, inboxA, inboxB, [seconds]));
            }
        }

        // Per policy: the median time, and every check held in every run.
        return [.. runs.GroupBy(r => r.Policy).Select(g => g.OrderBy(r => r.ConvergeSeconds).ElementAt(g.Count() / 2) with
        {
            Identical = g.All(r => r.Identical),
            TitlesAsPolicy = g.All(r => r.TitlesAsPolicy),
            OtherMerged = g.All(r => r.OtherMerged),
            ServerOpenConflicts = g.Max(r => r.ServerOpenConflicts),
            RunSeconds = [.. g.Select(r => r.ConvergeSeconds)],
        })];
    }

    private static SortedDictionary<string, string> ReadDump(string file)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(file))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            result[line[..tab]] = line[(tab + 1)..];
        }

        return result;
    }

    /// <summary>Reads the server's documents of a collection (their application view) and its open conflicts, from its PostgreSQL database.</summary>
    private static async Task<(SortedDictionary<string, string> Documents, int OpenConflicts)> ReadPostgresAsync(string connectionString, string scope, string collection, CancellationToken ct)
    {
        var documents = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(ct);
        await using (var command = new NpgsqlCommand("SELECT id, state FROM converge.documents WHERE scope = $1 AND collection = $2", connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = scope });
            command.Parameters.Add(new NpgsqlParameter { Value = collection });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                AddDocument(documents, reader.GetString(0), reader.GetFieldValue<byte[]>(1));
            }
        }

        await using (var command = new NpgsqlCommand("SELECT count(*) FROM converge.conflicts WHERE scope = $1 AND collection = $2 AND status = 0", connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = scope });
            command.Parameters.Add(new NpgsqlParameter { Value = collection });
            return (documents, Convert.ToInt32(await command.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture));
        }
    }

    private static void AddDocument(SortedDictionary<string, string> documents, string id, byte[] stateJson)
    {
        var state = JsonSerializer.Deserialize(stateJson, ProtocolJson.DocumentState)!;
        if (state.ToJson() is { } value)
        {
            documents[id] = Canonical(JsonNode.Parse(value.GetRawText()));
        }
    }

    /// <summary>Reads the server's documents of a collection (their application view) and its open conflicts, from its SQLite file.</summary>
    private static (SortedDictionary<string, string> Documents, int OpenConflicts) ReadServer(string db, string scope, string collection)
    {
        var documents = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = db, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id, state FROM documents WHERE scope = $s AND collection = $c;";
            command.Parameters.AddWithValue("$s", scope);
            command.Parameters.AddWithValue("$c", collection);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                AddDocument(documents, reader.GetString(0), reader.GetFieldValue<byte[]>(1));
            }
        }

        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT count(*) FROM conflicts WHERE scope = $s AND collection = $c AND status = 0;";
            command.Parameters.AddWithValue("$s", scope);
            command.Parameters.AddWithValue("$c", collection);
            return (documents, Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture));
        }
    }
}
