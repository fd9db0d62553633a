using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>
/// `live`: the latency of a write on device A to device B's change event, through the server's live
/// channel, with the server and the two devices in their own processes. With <c>--nodes 2</c> (on PostgreSQL), A is a
/// client of one server node and B of another: the change goes from node to node through the database.
/// </summary>
internal static class LiveBench
{
    private const string Scope = "live";
    private const string Collection = "notes";

    /// <summary>The first sequence number of the bare pushes of the breakdown.</summary>
    private const int RawSeq = 1_000_000;

    /// <summary>At most this many rounds of 50 writes wait for the JIT.</summary>
    private const int MaxSettleRounds = 200;

    /// <summary>The most server nodes a run may have.</summary>
    private const int MaxNodes = 8;

    /// <summary>The goal for the p99 of a write on one node reaching a client of another, on loopback.</summary>
    private const double CrossNodeGoalP99 = 20.0;

    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var samples = new Option<int>("--samples") { Description = "Timed writes.", DefaultValueFactory = _ => 1_000 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed writes first.", DefaultValueFactory = _ => 50 };
        var untiered = new Option<bool>("--no-tiered-compilation")
        {
            Description = "Run the server and devices with tiered compilation off (DOTNET_TieredCompilation=0: each method compiled optimized once, without profile-guided recompiling).",
        };
        var quickJit = new Option<bool>("--quick-jit")
        {
            Description = "Run the server and devices with the runtime's default quick JIT (DOTNET_TC_QuickJit=1), as an application that does not turn it off the way these benchmarks do: methods start unoptimized and are compiled again, optimized, in the background once hot.",
        };
        var settleOption = new Option<bool>("--settle") { Description = "After the warm-up writes, go on writing, in untimed rounds of 50, until a round in which no process compiled a method." };
        var breakdown = new Option<bool>("--breakdown")
        {
            Description = "Also note when each change message reaches B's process, on a bare WebSocket of its own, to split the latency into A-to-B's-socket and B's client (one more connection: it perturbs what it measures a little).",
        };
        var postgres = BenchPostgres.CreateOption("Run the server on PostgreSQL instead of SQLite (needed by --nodes 2).");
        var nodes = new Option<int>("--nodes")
        {
            Description = "Server processes, all on the one --postgres database: A is a client of the first and B of the last, so the latency is cross-node.",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("live", "Live latency: a write on device A seen by device B's change event through the server, one write at a time.")
        {
            json, samples, warmup, settleOption, untiered, quickJit, breakdown, nodes, postgres,
        };
        command.SetAction((parse, ct) => RunAsync(
            new Settings(
                parse.GetValue(samples),
                parse.GetValue(warmup),
                parse.GetValue(untiered) ? JitMode.Untiered : parse.GetValue(quickJit) ? JitMode.QuickJit : JitMode.QuickJitOff,
                parse.GetValue(settleOption),
                parse.GetValue(breakdown),
                parse.GetValue(nodes),
                parse.GetValue(postgres)),
            parse.GetValue(json),
            ct));
        command.Subcommands.Add(LiveBenchChildren.CreateDevice());
        command.Subcommands.Add(LiveBenchChildren.CreateServer());
        return command;
    }

    /// <summary>The options of a run.</summary>
    private sealed record Settings(int Samples, int Warmup, JitMode Jit, bool Settle, bool Breakdown, int Nodes, string? Postgres);

    /// <summary>How the server and devices compile.</summary>
    private enum JitMode
    {
        /// <summary>The benchmarks' own setting: tiered, quick JIT off (only precompiled framework code starts unoptimized).</summary>
        QuickJitOff,

        /// <summary>The runtime's default: quick JIT on.</summary>
        QuickJit,

        /// <summary>Tiered compilation off.</summary>
        Untiered,
    }

    private static async Task<int> RunAsync(Settings settings, FileInfo? jsonFile, CancellationToken ct)
    {
        var (samples, warmup, jitMode, settle, breakdown, nodes, postgresOption) = settings;
        if (samples < 1 || warmup < 0 || nodes is < 1 or > MaxNodes)
        {
            AnsiConsole.MarkupLine($"[red]--samples must be positive, --warmup at least 0 and --nodes 1 to {MaxNodes}.[/]");
            return 2;
        }

        if (nodes > 1 && postgresOption is null)
        {
            AnsiConsole.MarkupLine($"[red]--nodes {nodes} needs --postgres: several server nodes share one PostgreSQL database (--postgres auto starts a private one).[/]");
            return 2;
        }

        var result = new JsonObject
        {
            ["benchmark"] = "live",
            ["machine"] = LiveBenchShared.Machine(),
            ["nodes"] = nodes,
            ["store"] = postgresOption is null ? "sqlite" : "postgresql",
        };
        BenchPostgres? postgres = null;
        string? database = null;
        if (postgresOption is not null)
        {
            try
            {
                postgres = await BenchPostgres.OpenAsync(postgresOption, ct);
                database = await postgres.CreateDatabaseAsync("live", ct);
            }
            catch (InvalidOperationException e)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
                if (postgres is not null)
                {
                    await postgres.DisposeAsync();
                }

                return 2;
            }

            result["postgres"] = postgres.Description;
        }

        var directory = Directory.CreateTempSubdirectory("converge-bench-live-").FullName;
        BenchChild.WorkingDirectory = Directory.CreateDirectory(Path.Combine(directory, "cwd")).FullName;
        var latencies = new List<double>(samples);
        var localWrites = new List<double>(samples);
        var toSocket = new List<double>(samples);
        var inClient = new List<double>(samples);
        var serverOnly = new List<double>(samples);
        var lost = 0;
        var cpuNote = "";
        long jitDuring = 0;
        double serverPeak;
        var servers = new List<BenchChild>();
        try
        {
            IReadOnlyDictionary<string, string> runtime = jitMode switch
            {
                JitMode.QuickJit => new Dictionary<string, string> { ["DOTNET_TC_QuickJit"] = "1" },
                JitMode.Untiered => new Dictionary<string, string> { ["DOTNET_TieredCompilation"] = "0" },
                _ => new Dictionary<string, string>(),
            };
            result["tiered_compilation"] = jitMode != JitMode.Untiered;
            result["quick_jit"] = jitMode == JitMode.QuickJit;
            var urls = new List<string>();
            for (var node = 1; node <= nodes; node++)
            {
                var server = BenchChild.Start(
                    runtime,
                    ["live", "server", "--db", Path.Combine(directory, "server.db"), .. database is null ? Array.Empty<string>() : ["--postgres", database]]);
                servers.Add(server);
                urls.Add(await server.WaitForAsync("READY", TimeSpan.FromMinutes(1)));
            }

            // A is a client of the first node, B of the last.
            string urlA = urls[0], urlB = urls[^1];
            await using var a = BenchChild.Start(runtime, "live", "device");
            await using var b = BenchChild.Start(runtime, "live", "device");
            await a.SendAsync($"open a {Path.Combine(directory, "a.db")} {urlA} {Scope}");
            await b.SendAsync($"open b {Path.Combine(directory, "b.db")} {urlB} {Scope}");
            await a.SendAsync("live a");
            await b.SendAsync("live b");
            await b.SendAsync($"watch b {Collection}");
            if (breakdown)
            {
                await b.SendAsync($"tap {urlB} {Scope} {Collection}");
            }

            BenchChild[] processes = [.. servers, a, b];

            // One write at a time: B waits for the document before A writes it, and each write waits for the one before to
            // arrive. Answers A's stamp before the write, when PutAsync returned, and B's stamp at the event (-1: lost).
            var next = 0;
            async Task<(long Written, long Returned, long Arrived)> SampleAsync()
            {
                var i = next++;
                var id = "n" + i.ToString("D6", CultureInfo.InvariantCulture);
                var wait = $"await b {id} 10000";
                await b.WriteAsync(wait);
                var put = await a.SendAsync($"put a {Collection} {id} {i}");
                var arrived = LiveBenchShared.Long((await b.ReadOkAsync(wait))[0]);
                return (LiveBenchShared.Long(put[0]), LiveBenchShared.Long(put[1]), arrived);
            }

            AnsiConsole.MarkupLine($"[grey]{JitDescription(jitMode)}; {warmup} warm-up writes{(settle ? ", more until the JIT is done" : "")}, then {samples:N0} timed…[/]");
            for (var i = 0; i < warmup; i++)
            {
                await SampleAsync();
            }

            // The runtime compiles hot methods again, optimized, on a background thread, once they ran a while; in processes
            // this size that goes on for thousands of writes, and competes for the two cores with what is measured. So the
            // warm-up goes on, in rounds of 50 writes after a pause, until a round in which no process compiled anything.
            var jit = await JitAsync(processes);
            var rounds = 0;
            while (settle && rounds < MaxSettleRounds)
            {
                rounds++;
                await Task.Delay(500, ct);
                for (var i = 0; i < 50; i++)
                {
                    await SampleAsync();
                }

                var now = await JitAsync(processes);
                if (now == jit)
                {
                    break;
                }

                jit = now;
            }

            result["warmup"] = next;
            result["settled"] = settle && rounds < MaxSettleRounds;
            await Task.Delay(1_000, ct);
            jit = await JitAsync(processes);
            var timedStart = System.Diagnostics.Stopwatch.GetTimestamp();
            var cpuStart = Cpu(servers, a, b, postgres);
            for (var i = 0; i < samples; i++)
            {
                var (written, returned, arrived) = await SampleAsync();
                if (arrived < 0)
                {
                    lost++;
                    continue;
                }

                latencies.Add(LiveBenchShared.Ms(written, arrived));
                localWrites.Add(LiveBenchShared.Ms(written, returned));
                if (breakdown && LiveBenchShared.Long((await b.SendAsync($"tapped {next - 1} 1000"))[0]) is var tapped and > 0)
                {
                    toSocket.Add(LiveBenchShared.Ms(written, tapped));
                    inClient.Add(LiveBenchShared.Ms(tapped, arrived));
                }
            }

            jitDuring = await JitAsync(processes) - jit;
            result["jit_methods_during_timed"] = jitDuring;
            var timedSeconds = LiveBenchShared.Ms(timedStart, System.Diagnostics.Stopwatch.GetTimestamp()) / 1_000;
            var cpu = Cpu(servers, a, b, postgres).Zip(cpuStart, (end, start) => end - start).ToArray();
            result["timed_s"] = Math.Round(timedSeconds, 3);
            var cpuJson = new JsonObject();
            var names = CpuNames(nodes);
            for (var i = 0; i < names.Length; i++)
            {
                if (!double.IsNaN(cpu[i]))
                {
                    cpuJson[names[i].Key] = Math.Round(cpu[i], 2);
                }
            }

            result["cpu_s"] = cpuJson;
            cpuNote = $"{timedSeconds:F2} s; CPU: " + string.Join(", ", names.Select((n, i) => (n, i)).Where(x => !double.IsNaN(cpu[x.i])).Select(x => $"{x.n.Label} {cpu[x.i]:F2} s"));

            if (breakdown)
            {
                // The server and the network alone: the same writes pushed over a bare WebSocket from A's process (no client
                // store, no outbox), seen by the bare socket in B's process.
                await a.SendAsync($"rawopen {urlA} {Scope}");
                const int rawWarmup = 200;
                for (var i = 0; i < rawWarmup + samples; i++)
                {
                    var seq = RawSeq + i;
                    var pushed = LiveBenchShared.Long((await a.SendAsync($"rawpush {Collection} r{i:D6} {seq}"))[0]);
                    var seen = LiveBenchShared.Long((await b.SendAsync($"tapped {seq} 10000"))[0]);
                    if (i >= rawWarmup && seen > 0)
                    {
                        serverOnly.Add(LiveBenchShared.Ms(pushed, seen));
                    }
                }
            }

            var status = string.Join(' ', await a.SendAsync("status a")) + " / " + string.Join(' ', await b.SendAsync("status b"));
            result["device_status"] = status;
            serverPeak = servers.Max(s => s.PeakRssMb());
        }
        finally
        {
            for (var i = servers.Count - 1; i >= 0; i--)
            {
                await servers[i].DisposeAsync();
            }

            BenchChild.RemoveScratch(directory);

            if (postgres is not null)
            {
                await postgres.DisposeAsync();
            }
        }

        latencies.Sort();
        localWrites.Sort();
        double p50 = LiveBenchShared.Quantile(latencies, 0.50), p90 = LiveBenchShared.Quantile(latencies, 0.90), p99 = LiveBenchShared.Quantile(latencies, 0.99);
        var max = latencies.Count == 0 ? double.NaN : latencies[^1];
        result["samples"] = latencies.Count;
        result["lost"] = lost;
        result["min_ms"] = Math.Round(latencies.Count == 0 ? double.NaN : latencies[0], 3);
        result["p50_ms"] = Math.Round(p50, 3);
        result["p90_ms"] = Math.Round(p90, 3);
        result["p95_ms"] = Math.Round(LiveBenchShared.Quantile(latencies, 0.95), 3);
        result["p99_ms"] = Math.Round(p99, 3);
        result["p999_ms"] = Math.Round(LiveBenchShared.Quantile(latencies, 0.999), 3);
        result["max_ms"] = Math.Round(max, 3);
        result["mean_ms"] = Math.Round(latencies.Count == 0 ? double.NaN : latencies.Average(), 3);
        result["local_write_p50_ms"] = Math.Round(LiveBenchShared.Quantile(localWrites, 0.50), 3);
        result["server_peak_rss_mb"] = Math.Round(serverPeak, 1);
        toSocket.Sort();
        inClient.Sort();
        serverOnly.Sort();
        if (breakdown)
        {
            result["breakdown"] = new JsonObject
            {
                ["samples"] = toSocket.Count,
                ["to_b_socket_p50_ms"] = Math.Round(LiveBenchShared.Quantile(toSocket, 0.5), 3),
                ["to_b_socket_p99_ms"] = Math.Round(LiveBenchShared.Quantile(toSocket, 0.99), 3),
                ["b_client_p50_ms"] = Math.Round(LiveBenchShared.Quantile(inClient, 0.5), 3),
                ["b_client_p99_ms"] = Math.Round(LiveBenchShared.Quantile(inClient, 0.99), 3),
                ["bare_push_to_b_socket_p50_ms"] = Math.Round(LiveBenchShared.Quantile(serverOnly, 0.5), 3),
                ["bare_push_to_b_socket_p99_ms"] = Math.Round(LiveBenchShared.Quantile(serverOnly, 0.99), 3),
                ["bare_push_to_b_socket_max_ms"] = Math.Round(serverOnly.Count == 0 ? double.NaN : serverOnly.Max(), 3),
            };
        }

        // One node: the issue's goals for a write reaching another device. Across nodes: p99 within 20 ms on loopback.
        double? goalP50 = nodes > 1 ? null : 2.0;
        var goalP99 = nodes > 1 ? CrossNodeGoalP99 : 5.0;
        if (goalP50 is { } g50)
        {
            result["goal_p50_ms"] = g50;
        }

        result["goal_p99_ms"] = goalP99;
        result["met"] = lost == 0 && (goalP50 is null || p50 <= goalP50) && p99 <= goalP99;

        var title = nodes > 1 ? $"live latency, A's write on node 1 to B's event on node {nodes}" : "live latency, A's write to B's event";
        var table = new Table().RoundedBorder().AddColumn(title).AddColumn(new TableColumn("figure").RightAligned()).AddColumn("goal");
        if (postgres is not null)
        {
            table.AddRow("store", $"PostgreSQL, {nodes} node{(nodes > 1 ? "s" : "")}", Markup.Escape(postgres.Name));
        }

        table.AddRow("samples (after warm-up)", $"{latencies.Count:N0}" + (lost > 0 ? $" [red]({lost} lost)[/]" : ""), $"{samples:N0} after {result["warmup"]} warm-up writes; {jitDuring} methods compiled while timed");
        table.AddRow("p50", $"{p50:F3} ms", goalP50 is { } goal50 ? Goal(p50, goal50) : "");
        table.AddRow("p90", $"{p90:F3} ms", "");
        table.AddRow("p99", $"{p99:F3} ms", Goal(p99, goalP99));
        table.AddRow("max", $"{max:F3} ms", "");
        table.AddRow("  A's local write (PutAsync), p50", $"{LiveBenchShared.Quantile(localWrites, 0.50):F3} ms", "");
        if (breakdown)
        {
            table.AddRow("  A's write to the message at B's process, p50 / p99", $"{LiveBenchShared.Quantile(toSocket, 0.5):F3} / {LiveBenchShared.Quantile(toSocket, 0.99):F3} ms", "bare socket in B's process");
            table.AddRow("  a bare push from A's process to the message at B's, p50 / p99", $"{LiveBenchShared.Quantile(serverOnly, 0.5):F3} / {LiveBenchShared.Quantile(serverOnly, 0.99):F3} ms", "server and network alone, no client");
            table.AddRow("  the message to B's change event, p50 / p99", $"{LiveBenchShared.Quantile(inClient, 0.5):F3} / {LiveBenchShared.Quantile(inClient, 0.99):F3} ms", "B's client: receive, apply, event");
        }

        table.AddRow(nodes > 1 ? "server peak memory (largest node)" : "server peak memory", $"{serverPeak:F1} MB", "");
        table.AddRow("timed writes took", "", cpuNote);
        AnsiConsole.Write(table);
        if (jsonFile is not null)
        {
            await File.WriteAllTextAsync(jsonFile.FullName, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
            AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(jsonFile.FullName)}[/]");
        }

        return 0;
    }

    /// <summary>The methods compiled so far by the server, A and B together.</summary>
    private static string JitDescription(JitMode mode) => mode switch
    {
        JitMode.QuickJit => "tiered compilation with quick JIT on (the runtime's default)",
        JitMode.Untiered => "tiered compilation off",
        _ => "tiered compilation with quick JIT off (the benchmarks' setting)",
    };

    internal static async Task<long> JitAsync(params BenchChild[] children)
    {
        long total = 0;
        foreach (var child in children)
        {
            total += LiveBenchShared.Long((await child.SendAsync("jit"))[0]);
        }

        return total;
    }

    /// <summary>The CPU seconds used so far by each server node, A, B, this process and a private PostgreSQL (NaN for another server), in the order of <see cref="CpuNames"/>.</summary>
    private static double[] Cpu(List<BenchChild> servers, BenchChild a, BenchChild b, BenchPostgres? postgres) =>
    [
        .. servers.Select(s => LiveBenchShared.CpuSeconds(s.Id)),
        LiveBenchShared.CpuSeconds(a.Id),
        LiveBenchShared.CpuSeconds(b.Id),
        LiveBenchShared.CpuSeconds(Environment.ProcessId),
        postgres?.CpuSeconds() ?? double.NaN,
    ];

    /// <summary>The JSON keys and labels of <see cref="Cpu"/>'s figures.</summary>
    private static (string Key, string Label)[] CpuNames(int nodes) =>
    [
        .. nodes == 1 ? [("server", "server")] : Enumerable.Range(1, nodes).Select(i => ($"node{i}", $"node {i}")),
        ("a", "A"),
        ("b", "B"),
        ("driver", "this driver"),
        ("postgres", "PostgreSQL"),
    ];

    internal static string Goal(double value, double bound) =>
        value <= bound ? $"≤ {bound:0.##} ms [green]met[/]" : $"≤ {bound:0.##} ms [red]not met[/]";
}
