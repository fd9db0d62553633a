using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>`converge bench sync`: bulk sync, conflict storm, local writes and incremental pull, with a server and two devices in separate processes.</summary>
internal static class SyncBench
{
    private const int LargeN = 100_000;
    private const int WriteBatch = 500;
    private const int StormDocuments = 1_000;
    private const int WarmupRounds = 4;
    private const int WarmupDocuments = 5_000;
    private const int BulkRepeats = 5;
    private const int StormRepeats = 3;

    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Documents in the bulk sync.", DefaultValueFactory = _ => 10_000 };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var large = new Option<bool>("--skip-large") { Description = $"Skip the bulk sync of {LargeN:N0} documents." };
        var scope = new Option<int>("--incremental-scope") { Description = "Documents in the large scope of the incremental pull.", DefaultValueFactory = _ => 1_000_000 };
        var only = new Option<string[]>("--only") { Description = "Run only these workloads: local, bulk, storm, incremental.", AllowMultipleArgumentsPerToken = true };
        only.AcceptOnlyFromAmong("local", "bulk", "storm", "incremental");
        var command = new Command("sync", "Sync throughput, conflict storm, local writes and incremental pull, with a server and two devices in their own processes.")
        {
            n, json, large, scope, only,
        };
        command.SetAction((parse, ct) => RunAsync(parse.GetValue(n), parse.GetValue(json), parse.GetValue(large), parse.GetValue(scope), parse.GetValue(only) is { Length: > 0 } o ? o : null, ct));
        command.Subcommands.Add(SyncBenchChildren.CreateServer());
        command.Subcommands.Add(SyncBenchChildren.CreateDevice());
        return command;
    }

    private static async Task<int> RunAsync(int n, FileInfo? jsonFile, bool skipLarge, int incrementalScope, string[]? only, CancellationToken ct)
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
                await BulksAsync(directory, skipLarge || n == LargeN ? [n] : [n, LargeN], n, result, table, ct);
            }

            if (Runs("storm"))
            {
                await StormsAsync(directory, result, table, ct);
            }

            if (Runs("incremental"))
            {
                await IncrementalAsync(directory, incrementalScope, result, table, ct);
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
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

    private static async Task BulksAsync(string directory, int[] sizes, int n, JsonObject result, Table table, CancellationToken ct)
    {
        var bulk = new JsonArray();
        double peak = 0;
        foreach (var size in sizes)
        {
            AnsiConsole.MarkupLine($"[grey]bulk sync of {size:N0} documents…[/]");
            var figures = await BulkAsync(Path.Combine(directory, $"bulk-{size}"), size, ct);
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
        }

        result["server_peak_rss_mb"] = Math.Round(peak, 1);
        result["bulk"] = bulk;
    }

    private static async Task StormsAsync(string directory, JsonObject result, Table table, CancellationToken ct)
    {
        AnsiConsole.MarkupLine("[grey]conflict storm…[/]");
        var storm = await StormAsync(Path.Combine(directory, "storm"), ct);
        result["conflict_converge_s"] = Math.Round(storm.Max(s => s.ConvergeSeconds), 4);
        result["unresolved"] = storm.Where(s => s.Policy != "Manual").Sum(s => s.ServerOpenConflicts);
        result["storm"] = new JsonArray([.. storm.Select(s => (JsonNode)s.ToJson())]);
        foreach (var s in storm)
        {
            table.AddRow(
                $"conflict storm, {s.Policy}",
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

    /// <summary>Device A writes N documents offline in batches of 500; timed, A syncs while B, empty, pulls until it holds all N.</summary>
    private static async Task<Bulk> BulkAsync(string directory, int n, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        await using var server = BenchChild.Start("bench", "sync", "server", "--db", Path.Combine(directory, "server.db"));
        var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var a = BenchChild.Start("bench", "sync", "device");
        await using var b = BenchChild.Start("bench", "sync", "device");
        await a.SendAsync($"open a {Path.Combine(directory, "a.db")} {url} bulk");
        await b.SendAsync($"open b {Path.Combine(directory, "b.db")} {url} bulk");

        // Warm-up, so no timed step runs code the JIT has not optimized yet in any of the three processes: the runtime
        // moves hot methods to optimized code only after they ran a while, in the background.
        for (var round = 0; round < WarmupRounds; round++)
        {
            await a.SendAsync($"write a warmup{round} 0 {WarmupDocuments} {WriteBatch}");
            await a.SendAsync("sync a");
            await b.SendAsync($"pull-until b {WarmupDocuments}");
            await Task.Delay(200, ct);
        }

        // A short run is at the mercy of one stalled write on a shared machine: it is repeated, each time with new
        // documents in a collection of their own, and the median taken.
        var runs = new List<Bulk>();
        for (var run = 0; run < (n <= 20_000 ? BulkRepeats : 1); run++)
        {
            var collection = "docs" + run;
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

            runs.Add(new Bulk(
                n,
                Seconds(write[0], write[1]),
                Seconds(push[0], push[5]),
                Seconds(pull[0], pull[1]),
                Seconds(push[0], pull[1]),
                0,
                int.Parse(pull[2], CultureInfo.InvariantCulture),
                []));

            // Let the stores' background checkpoints of this run finish before the next.
            await Task.Delay(1_000, ct);
        }

        var median = runs.OrderBy(r => r.TotalSeconds).ElementAt(runs.Count / 2);
        return median with { ServerPeakRssMb = server.PeakRssMb(), RunTotals = [.. runs.Select(r => r.TotalSeconds)] };
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
    private static async Task<List<Storm>> StormAsync(string directory, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        var serverDb = Path.Combine(directory, "server.db");
        await using var server = BenchChild.Start("bench", "sync", "server", "--db", serverDb);
        var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var a = BenchChild.Start("bench", "sync", "device");
        await using var b = BenchChild.Start("bench", "sync", "device");
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
            await a.SendAsync($"open {name} {Path.Combine(directory, name + "-a.db")} {url} {scope}");
            await b.SendAsync($"open {name} {Path.Combine(directory, name + "-b.db")} {url} {scope}");
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

            var dumpA = Path.Combine(directory, name + "-a.txt");
            var dumpB = Path.Combine(directory, name + "-b.txt");
            var inboxA = int.Parse((await a.SendAsync($"dump {name} {collection} {dumpA}"))[1], CultureInfo.InvariantCulture);
            var inboxB = int.Parse((await b.SendAsync($"dump {name} {collection} {dumpB}"))[1], CultureInfo.InvariantCulture);
            var (serverDocs, serverConflicts) = ReadServer(serverDb, scope, collection);
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
                var state = JsonSerializer.Deserialize(reader.GetFieldValue<byte[]>(1), ProtocolJson.DocumentState)!;
                if (state.ToJson() is { } value)
                {
                    documents[reader.GetString(0)] = Canonical(JsonNode.Parse(value.GetRawText()));
                }
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
