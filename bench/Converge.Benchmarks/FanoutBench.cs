using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>
/// `fanout`: one writer's changes streamed by one server to many live connections following one scope,
/// and many idle live connections held by one server, with their memory.
/// </summary>
internal static class FanoutBench
{
    private const string Scope = "fanout";
    private const string IdleScope = "idle";

    /// <summary>Changes sent to the idle connections at the end, to show they are all still live.</summary>
    private const int Pings = 5;

    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var clients = new Option<int>("--clients") { Description = "Live connections following the writer's scope (0 skips the fan-out).", DefaultValueFactory = _ => 1_000 };
        var seconds = new Option<int>("--seconds") { Description = "How long the writer writes.", DefaultValueFactory = _ => 60 };
        var rate = new Option<int>("--rate") { Description = "Writes per second.", DefaultValueFactory = _ => 100 };
        var idle = new Option<int>("--idle") { Description = "Idle live connections held by a second server (0 skips it).", DefaultValueFactory = _ => 10_000 };
        var processes = new Option<int>("--processes") { Description = "Listener processes the connections are spread over.", DefaultValueFactory = _ => 2 };
        var hold = new Option<int>("--hold") { Description = "Seconds the idle connections are held before the changes that check they are all still live (the server pings each every 15 s).", DefaultValueFactory = _ => 35 };
        var postgres = BenchPostgres.CreateOption("Run the servers on PostgreSQL instead of SQLite (the server's memory figures then leave PostgreSQL's processes out).");
        var command = new Command("fanout", "Live fan-out: one writer, many live connections on one scope, delivery and latency, server memory; and idle connections per server.")
        {
            json, clients, seconds, rate, idle, processes, hold, postgres,
        };
        command.SetAction((parse, ct) => RunAsync(
            new Settings(parse.GetValue(clients), parse.GetValue(seconds), parse.GetValue(rate), parse.GetValue(idle), parse.GetValue(processes), parse.GetValue(hold), parse.GetValue(postgres)),
            parse.GetValue(json),
            ct));
        command.Subcommands.Add(LiveBenchChildren.CreateListeners());
        command.Subcommands.Add(LiveBenchChildren.CreateServer());
        return command;
    }

    private sealed record Settings(int Clients, int Seconds, int Rate, int Idle, int Processes, int Hold, string? Postgres)
    {
        /// <summary>Gets or sets the PostgreSQL server each workload gets a fresh database on, when the servers run on PostgreSQL.</summary>
        public BenchPostgres? Server { get; set; }

        public int Writes => Seconds * Rate;

        /// <summary>Untimed writes first, at the same rate: two seconds' worth, at least 100.</summary>
        public int WarmupWrites => Math.Max(100, 2 * Rate);
    }

    private static async Task<int> RunAsync(Settings settings, FileInfo? jsonFile, CancellationToken ct)
    {
        if (settings.Clients < 0 || settings.Idle < 0 || settings.Hold < 0 || settings.Seconds < 1 || settings.Rate < 1 || settings.Processes < 1)
        {
            AnsiConsole.MarkupLine("[red]--seconds, --rate and --processes must be positive; --clients, --idle and --hold at least 0.[/]");
            return 2;
        }

        var result = new JsonObject
        {
            ["benchmark"] = "fanout",
            ["machine"] = LiveBenchShared.Machine(),
        };
        var table = new Table().RoundedBorder().AddColumn("workload").AddColumn(new TableColumn("figure").RightAligned()).AddColumn("goal / note");
        var directory = Directory.CreateTempSubdirectory("converge-bench-fanout-").FullName;
        BenchChild.WorkingDirectory = Directory.CreateDirectory(Path.Combine(directory, "cwd")).FullName;
        try
        {
            result["store"] = settings.Postgres is null ? "sqlite" : "postgresql";
            if (settings.Postgres is not null)
            {
                try
                {
                    settings.Server = await BenchPostgres.OpenAsync(settings.Postgres, ct);
                }
                catch (InvalidOperationException e)
                {
                    AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
                    return 2;
                }

                result["postgres"] = settings.Server.Description;
                table.AddRow("store", "PostgreSQL", Markup.Escape(settings.Server.Name));
            }

            if (settings.Clients > 0)
            {
                await FanoutAsync(directory, settings, result, table, ct);
            }

            if (settings.Idle > 0)
            {
                await IdleAsync(directory, settings, result, table, ct);
            }
        }
        finally
        {
            if (settings.Server is not null)
            {
                await settings.Server.DisposeAsync();
            }

            BenchChild.RemoveScratch(directory);
        }

        AnsiConsole.Write(table);
        if (jsonFile is not null)
        {
            await File.WriteAllTextAsync(jsonFile.FullName, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
            AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(jsonFile.FullName)}[/]");
        }

        return 0;
    }

    // ---- fan-out ----

    private static async Task FanoutAsync(string directory, Settings s, JsonObject result, Table table, CancellationToken ct)
    {
        await using var server = await StartServerAsync(directory, "fanout", s, ct);
        var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var writer = BenchChild.Start("live", "device");
        await writer.SendAsync($"open w {Path.Combine(directory, "writer.db")} {url} {Scope}");
        await writer.SendAsync("live w");

        var listeners = StartListeners(s.Processes);
        try
        {
            AnsiConsole.MarkupLine($"[grey]fan-out: connecting {s.Clients:N0} listeners over {listeners.Count} processes…[/]");
            var (ready, failed, connectSeconds) = await ConnectAsync(listeners, url, Scope, s.Clients, 50);
            var rssConnected = LiveBenchShared.RssMb(server.Id);
            if (ready != s.Clients)
            {
                throw new InvalidOperationException($"Only {ready} of {s.Clients} listeners connected ({failed} failed).");
            }

            // Warm-up at the same rate, then on in rounds of a second's writes after a pause, until a round in which no
            // process compiled anything (the runtime's optimizing recompilation would otherwise compete for the cores).
            AnsiConsole.MarkupLine($"[grey]fan-out: {s.WarmupWrites} warm-up writes and more until the JIT is done, then {s.Writes:N0} at {s.Rate}/s for {s.Seconds} s…[/]");
            BenchChild[] all = [server, writer, .. listeners];
            await writer.SendAsync($"rate w warmup 0 {s.WarmupWrites} {s.Rate}");
            var warm = s.WarmupWrites;
            var jit = await LiveBench.JitAsync(all);
            var settled = false;
            for (var round = 0; round < 60 && !settled; round++)
            {
                await Task.Delay(500, ct);
                await writer.SendAsync($"rate w warmup {warm} {s.Rate} {s.Rate}");
                warm += s.Rate;
                var now = await LiveBench.JitAsync(all);
                settled = now == jit;
                jit = now;
            }

            await Task.Delay(1_000, ct);
            foreach (var listener in listeners)
            {
                await listener.SendAsync($"arm run {s.Writes}");
            }

            // The server's memory, sampled through the run and the delivery of its last writes.
            var cpuStart = Cpu(server, writer, listeners);
            using var sampling = new CancellationTokenSource();
            var sampler = SampleAsync(server, writer, listeners, sampling.Token);
            var run = await writer.SendAsync($"rate w run 0 {s.Writes} {s.Rate}", TimeSpan.FromSeconds((2 * s.Seconds) + 120));
            var writeSeconds = LiveBenchShared.Ms(LiveBenchShared.Long(run[0]), LiveBenchShared.Long(run[1])) / 1_000;
            var expected = (long)s.Clients * s.Writes;
            var drained = await WaitForDeliveriesAsync(listeners, expected, ct);
            var drainSeconds = LiveBenchShared.Ms(LiveBenchShared.Long(run[1]), drained.At) / 1_000;
            var cpu = Cpu(server, writer, listeners) - cpuStart;
            await sampling.CancelAsync();
            var (rssPeakSampled, timeline) = await sampler;
            var rssHwm = server.PeakRssMb();
            var writerStatus = string.Join(' ', await writer.SendAsync("status w"));

            var (histogram, counts, lastInOrder) = await ReportAsync(listeners, directory, "fanout", ct);
            var lastMs = lastInOrder.Order().ToList();
            long delivered = counts.Delivered, missing = expected - delivered;
            double p50 = histogram.Quantile(0.50), p99 = histogram.Quantile(0.99), p999 = histogram.Quantile(0.999), max = histogram.MaxMs();
            var listenerRss = listeners.Sum(l => LiveBenchShared.RssMb(l.Id));

            result["clients"] = s.Clients;
            result["seconds"] = s.Seconds;
            result["rate"] = s.Rate;
            result["writes"] = s.Writes;
            result["warmup_writes"] = warm;
            result["settled"] = settled;
            result["write_seconds"] = Math.Round(writeSeconds, 3);
            result["writer_max_late_ms"] = Math.Round(LiveBenchShared.Ms(0, LiveBenchShared.Long(run[3])), 3);
            result["expected"] = expected;
            result["delivered"] = delivered;
            result["missing"] = missing;
            result["clients_complete"] = counts.Complete;
            result["least_per_client"] = counts.Least;
            result["duplicates"] = counts.Duplicates;
            result["pokes"] = counts.Pokes;
            result["delivered_by_pull"] = counts.Pulled;
            result["closed"] = counts.Closed;
            result["drain_s"] = Math.Round(drainSeconds, 3);
            result["p50_ms"] = Math.Round(p50, 3);
            result["p99_ms"] = Math.Round(p99, 3);
            result["p999_ms"] = Math.Round(p999, 3);
            result["max_ms"] = Math.Round(max, 3);
            result["within_50ms"] = Math.Round(histogram.ShareAtMost(50), 5);
            result["all_clients_p50_ms"] = Math.Round(LiveBenchShared.Quantile(lastMs, 0.5), 3);
            result["all_clients_p99_ms"] = Math.Round(LiveBenchShared.Quantile(lastMs, 0.99), 3);
            result["connect_s"] = Math.Round(connectSeconds, 3);
            result["server_rss_connected_mb"] = Math.Round(rssConnected, 1);
            result["server_peak_rss_sampled_mb"] = Math.Round(rssPeakSampled, 1);
            result["server_peak_rss_mb"] = Math.Round(rssHwm, 1);
            result["listener_processes"] = listeners.Count;
            result["listeners_rss_mb"] = Math.Round(listenerRss, 1);
            result["writer_status"] = writerStatus;
            result["cpu_s"] = new JsonObject { ["server"] = Math.Round(cpu.Server, 2), ["writer"] = Math.Round(cpu.Writer, 2), ["listeners"] = Math.Round(cpu.Listeners, 2) };
            result["timeline"] = timeline;
            result["by_10s"] = new JsonArray([.. lastInOrder.Chunk(s.Rate * 10).Select(w => (JsonNode)new JsonObject
            {
                ["all_clients_p50_ms"] = Math.Round(LiveBenchShared.Quantile([.. w.Order()], 0.5), 2),
                ["all_clients_max_ms"] = Math.Round(w.Max(), 2),
            })]);
            result["fanout_met"] = missing == 0 && p99 <= 50 && rssHwm <= 300;

            table.AddRow($"fan-out: {s.Clients:N0} clients, {s.Writes:N0} writes at {s.Rate}/s", $"{delivered:N0} of {expected:N0}", missing == 0 ? "every client every change [green]met[/]" : $"[red]{missing:N0} missing[/], {counts.Complete:N0} clients complete");
            table.AddRow("  delivery latency p50 / p99", $"{p50:F2} / {p99:F2} ms", "p99 " + LiveBench.Goal(p99, 50));
            table.AddRow("  delivery latency p99.9 / max", $"{p999:F2} / {max:F2} ms", $"{histogram.ShareAtMost(50):P2} within 50 ms");
            table.AddRow("  a write reaching every client, p50 / p99", $"{LiveBenchShared.Quantile(lastMs, 0.5):F2} / {LiveBenchShared.Quantile(lastMs, 0.99):F2} ms", "per write, its last delivery");
            table.AddRow("  warm-up", $"{warm:N0} writes", settled ? "until no process compiled a method for a round" : "[yellow]the JIT had not settled[/]");
            table.AddRow("  pokes (then pulled) / duplicates", $"{counts.Pokes:N0} ({counts.Pulled:N0}) / {counts.Duplicates:N0}", $"writer wrote for {writeSeconds:F2} s; last delivery {drainSeconds:F2} s after the last write");
            table.AddRow("  CPU time during the run", $"{cpu.Server + cpu.Writer + cpu.Listeners:F1} s", $"server {cpu.Server:F1} s, writer {cpu.Writer:F1} s, listeners {cpu.Listeners:F1} s, over {writeSeconds + drainSeconds:F1} s on {Environment.ProcessorCount} cores");
            table.AddRow("  server memory, peak", $"{rssHwm:F1} MB", (rssHwm <= 300 ? "≤ 300 MB [green]met[/]" : "≤ 300 MB [red]not met[/]") + $"; {rssConnected:F1} MB connected, {rssPeakSampled:F1} MB sampled peak during the run");
        }
        finally
        {
            foreach (var listener in listeners)
            {
                await listener.DisposeAsync();
            }
        }
    }

    /// <summary>A server child on a SQLite file, or on a fresh PostgreSQL database when the bench runs on PostgreSQL.</summary>
    private static async Task<BenchChild> StartServerAsync(string directory, string name, Settings s, CancellationToken ct) =>
        s.Server is null
            ? BenchChild.Start("fanout", "server", "--db", Path.Combine(directory, name + ".db"))
            : BenchChild.Start("fanout", "server", "--db", Path.Combine(directory, name + ".db"), "--postgres", await s.Server.CreateDatabaseAsync(name, ct));

    // ---- idle connections ----

    private static async Task IdleAsync(string directory, Settings s, JsonObject result, Table table, CancellationToken ct)
    {
        await using var server = await StartServerAsync(directory, "idle", s, ct);
        var url = await server.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var writer = BenchChild.Start("live", "device");
        await writer.SendAsync($"open w {Path.Combine(directory, "idle-writer.db")} {url} {IdleScope}");
        await writer.SendAsync("live w");

        // The server has served the paths the idle connections take (connect, authenticate, upgrade, a change sent to
        // them, close) before the baseline is read, so the figure is what the connections hold, not first-use costs.
        AnsiConsole.MarkupLine($"[grey]idle: warming up, then connecting {s.Idle:N0} idle listeners over {s.Processes} processes…[/]");
        await using (var warm = StartListeners(1)[0])
        {
            await warm.SendAsync($"connect {url} {IdleScope} 200 50");
            await warm.SendAsync("arm warm 1");
            await writer.SendAsync($"put w warm warm-0 0");
            await Task.Delay(500, ct);
        }

        // The baseline is the server at rest: collected, then left a moment.
        var heapBefore = Memory(await server.SendAsync("gc"));
        await Task.Delay(2_000, ct);
        var before = await SteadyRssAsync(server.Id, ct);

        var listeners = StartListeners(s.Processes);
        try
        {
            var (ready, failed, connectSeconds) = await ConnectAsync(listeners, url, IdleScope, s.Idle, 100);
            await Task.Delay(3_000, ct);
            var with = await SteadyRssAsync(server.Id, ct);
            var perConnectionKb = (with - before) * 1024 / Math.Max(1, ready);

            // What of it the connections keep: after a full collection, the live managed bytes and the resident memory.
            var heapWith = Memory(await server.SendAsync("gc"));
            await Task.Delay(1_000, ct);
            var withCollected = await SteadyRssAsync(server.Id, ct);
            var heapKb = (heapWith.Heap - heapBefore.Heap) / 1024.0 / Math.Max(1, ready);
            var collectedKb = (withCollected - before) * 1024 / Math.Max(1, ready);

            // Held a while (through keep-alive pings), then still connected and live: each of a few changes, written a
            // moment apart, reaches every one of them.
            AnsiConsole.MarkupLine($"[grey]idle: holding {ready:N0} connections for {s.Hold} s…[/]");
            await Task.Delay(TimeSpan.FromSeconds(s.Hold), ct);
            var afterHold = await SteadyRssAsync(server.Id, ct);
            foreach (var listener in listeners)
            {
                await listener.SendAsync($"arm ping {Pings}");
            }

            for (var i = 0; i < Pings; i++)
            {
                await writer.SendAsync($"put w ping ping-{i} {i}");
                await Task.Delay(500, ct);
            }

            await WaitForDeliveriesAsync(listeners, (long)ready * Pings, ct);
            var writerStatus = string.Join(' ', await writer.SendAsync("status w"));
            var (histogram, counts, _) = await ReportAsync(listeners, directory, "idle", ct);
            var hwm = server.PeakRssMb();

            result["idle_connections"] = ready;
            result["idle_failed"] = failed;
            result["idle_connect_s"] = Math.Round(connectSeconds, 3);
            result["idle_server_rss_before_mb"] = Math.Round(before, 1);
            result["idle_server_rss_mb"] = Math.Round(with, 1);
            result["idle_server_peak_rss_mb"] = Math.Round(hwm, 1);
            result["kb_per_idle_connection"] = Math.Round(perConnectionKb, 2);
            result["idle_server_rss_collected_mb"] = Math.Round(withCollected, 1);
            result["idle_hold_s"] = s.Hold;
            result["idle_server_rss_after_hold_mb"] = Math.Round(afterHold, 1);
            result["kb_per_idle_connection_collected"] = Math.Round(collectedKb, 2);
            result["managed_kb_per_idle_connection"] = Math.Round(heapKb, 2);
            result["idle_server_managed_before_mb"] = Math.Round(heapBefore.Heap / 1024.0 / 1024.0, 1);
            result["idle_server_managed_mb"] = Math.Round(heapWith.Heap / 1024.0 / 1024.0, 1);
            result["idle_server_threads_before"] = heapBefore.Threads;
            result["idle_server_threads"] = heapWith.Threads;
            result["idle_pings"] = Pings;
            result["idle_ping_delivered"] = counts.Delivered;
            result["idle_ping_p50_ms"] = Math.Round(histogram.Quantile(0.5), 3);
            result["idle_ping_p99_ms"] = Math.Round(histogram.Quantile(0.99), 3);
            result["idle_ping_max_ms"] = Math.Round(histogram.MaxMs(), 3);
            result["idle_closed"] = counts.Closed;
            result["idle_writer_status"] = writerStatus;
            result["idle_met"] = ready >= 10_000 && counts.Delivered == (long)ready * Pings;

            table.AddRow($"idle: live connections held by one server", $"{ready:N0}", (ready >= 10_000 ? "≥ 10,000 [green]met[/]" : "≥ 10,000 [red]not met[/]") + (failed > 0 ? $"; [red]{failed:N0} failed[/]" : "") + $"; connected in {connectSeconds:F1} s");
            table.AddRow("  server memory per idle connection", $"{perConnectionKb:F1} KB", $"RSS {before:F1} MB before, {with:F1} MB with them (peak {hwm:F1} MB)");
            table.AddRow("  … after a full GC in the server", $"{collectedKb:F1} KB", $"RSS {withCollected:F1} MB; live managed heap {heapKb:F1} KB per connection ({heapBefore.Heap / 1048576.0:F1} → {heapWith.Heap / 1048576.0:F1} MB); threads {heapBefore.Threads} → {heapWith.Threads}");
            table.AddRow($"  after {s.Hold} s held", $"{ready - counts.Closed:N0} open", $"server RSS {afterHold:F1} MB");
            table.AddRow($"  {Pings} changes to all of them, 0.5 s apart", $"{counts.Delivered:N0} of {(long)ready * Pings:N0} delivered", $"latency p50 {histogram.Quantile(0.5):F1} ms, p99 {histogram.Quantile(0.99):F1} ms, max {histogram.MaxMs():F1} ms");
        }
        finally
        {
            foreach (var listener in listeners)
            {
                await listener.DisposeAsync();
            }
        }
    }

    // ---- helpers ----

    private static (long Heap, long Committed, long Rss, int Threads) Memory(string[] answer) =>
        (LiveBenchShared.Long(answer[0]), LiveBenchShared.Long(answer[1]), LiveBenchShared.Long(answer[2]), int.Parse(answer[3], CultureInfo.InvariantCulture));

    private readonly record struct CpuTimes(double Server, double Writer, double Listeners)
    {
        public static CpuTimes operator -(CpuTimes a, CpuTimes b) => new(a.Server - b.Server, a.Writer - b.Writer, a.Listeners - b.Listeners);
    }

    private static CpuTimes Cpu(BenchChild server, BenchChild writer, List<BenchChild> listeners) =>
        new(LiveBenchShared.CpuSeconds(server.Id), LiveBenchShared.CpuSeconds(writer.Id), listeners.Sum(l => LiveBenchShared.CpuSeconds(l.Id)));

    /// <summary>Starts the listener processes.</summary>
    /// <remarks>
    /// They run their socket continuations inline on the socket engine's threads instead of the thread pool
    /// (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>): they stand in for devices that would each have their own CPU,
    /// so they should take as little of the server's as they can. The server and the writer run with the defaults.
    /// </remarks>
    private static List<BenchChild> StartListeners(int processes)
    {
        Environment.SetEnvironmentVariable(InlineCompletions, "1");
        try
        {
            return [.. Enumerable.Range(0, processes).Select(_ => BenchChild.Start("fanout", "listeners"))];
        }
        finally
        {
            Environment.SetEnvironmentVariable(InlineCompletions, null);
        }
    }

    private const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Spreads the connections over the listener processes, which connect at the same time; answers the ready and failed counts and the seconds it took.</summary>
    private static async Task<(int Ready, int Failed, double Seconds)> ConnectAsync(List<BenchChild> listeners, string url, string scope, int count, int parallel)
    {
        var commands = listeners.Select((l, i) => (Listener: l, Command: $"connect {url} {scope} {(count / listeners.Count) + (i < count % listeners.Count ? 1 : 0)} {parallel}")).ToList();
        foreach (var (listener, command) in commands)
        {
            await listener.WriteAsync(command);
        }

        int ready = 0, failed = 0;
        long start = long.MaxValue, end = 0;
        foreach (var (listener, command) in commands)
        {
            var answer = await listener.ReadOkAsync(command, TimeSpan.FromMinutes(10));
            ready += int.Parse(answer[0], CultureInfo.InvariantCulture);
            failed += int.Parse(answer[1], CultureInfo.InvariantCulture);
            start = Math.Min(start, LiveBenchShared.Long(answer[2]));
            end = Math.Max(end, LiveBenchShared.Long(answer[3]));
        }

        return (ready, failed, LiveBenchShared.Ms(start, end) / 1_000);
    }

    /// <summary>Polls the listeners until every expected delivery is counted, or nothing more arrives for five seconds.</summary>
    private static async Task<(long Delivered, long At)> WaitForDeliveriesAsync(List<BenchChild> listeners, long expected, CancellationToken ct)
    {
        long last = -1;
        var lastChange = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            long delivered = 0;
            foreach (var listener in listeners)
            {
                delivered += LiveBenchShared.Long((await listener.SendAsync("progress"))[0]);
            }

            var now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (delivered >= expected)
            {
                return (delivered, now);
            }

            if (delivered != last)
            {
                (last, lastChange) = (delivered, now);
            }
            else if (LiveBenchShared.Ms(lastChange, now) > 5_000)
            {
                return (delivered, lastChange);
            }

            await Task.Delay(50, ct);
        }
    }

    private sealed record Counts(long Delivered, long Duplicates, long Pokes, long Pulled, long Frames, long Complete, long Least, long Closed);

    /// <summary>Collects every listener process's counts and merges their latency histograms.</summary>
    private static async Task<(LatencyHistogram Histogram, Counts Counts, List<double> LastMs)> ReportAsync(List<BenchChild> listeners, string directory, string name, CancellationToken ct)
    {
        var histogram = new LatencyHistogram();
        long[]? last = null;
        long delivered = 0, duplicates = 0, pokes = 0, pulled = 0, frames = 0, complete = 0, least = long.MaxValue, closed = 0;
        for (var i = 0; i < listeners.Count; i++)
        {
            var file = Path.Combine(directory, $"{name}-latency-{i}.txt");
            var a = (await listeners[i].SendAsync($"report {file}")).Select(LiveBenchShared.Long).ToArray();
            delivered += a[1];
            duplicates += a[2];
            pokes += a[3];
            pulled += a[4];
            frames += a[5];
            complete += a[6];
            least = Math.Min(least, a[7]);
            closed += a[8];
            histogram.Merge(await File.ReadAllLinesAsync(file, ct));
            var lines = await File.ReadAllLinesAsync(file + ".last", ct);
            last ??= new long[lines.Length];
            for (var w = 0; w < lines.Length; w++)
            {
                last[w] = Math.Max(last[w], LiveBenchShared.Long(lines[w]));
            }
        }

        // Per write, in order, when its last delivery happened: the time the write took to reach every connection.
        var lastMs = (last ?? []).Select(t => LiveBenchShared.Ms(0, t)).ToList();
        return (histogram, new Counts(delivered, duplicates, pokes, pulled, frames, complete, least, closed), lastMs);
    }

    /// <summary>The peak of the server's resident memory, sampled every 100 ms until cancelled; and every 5 s, the CPU each side used and the server's memory.</summary>
    private static async Task<(double PeakMb, JsonArray Timeline)> SampleAsync(BenchChild server, BenchChild writer, List<BenchChild> listeners, CancellationToken ct)
    {
        double peak = 0;
        var timeline = new JsonArray();
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var (last, lastCpu) = (start, Cpu(server, writer, listeners));
        try
        {
            while (true)
            {
                var rss = LiveBenchShared.RssMb(server.Id);
                peak = Math.Max(peak, rss);
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (LiveBenchShared.Ms(last, now) >= 5_000)
                {
                    var cpu = Cpu(server, writer, listeners);
                    var seconds = LiveBenchShared.Ms(last, now) / 1_000;
                    var used = cpu - lastCpu;
                    timeline.Add(new JsonObject
                    {
                        ["at_s"] = Math.Round(LiveBenchShared.Ms(start, now) / 1_000, 1),
                        ["server_cores"] = Math.Round(used.Server / seconds, 2),
                        ["writer_cores"] = Math.Round(used.Writer / seconds, 2),
                        ["listeners_cores"] = Math.Round(used.Listeners / seconds, 2),
                        ["server_rss_mb"] = Math.Round(rss, 1),
                    });
                    (last, lastCpu) = (now, cpu);
                }

                await Task.Delay(100, ct);
            }
        }
        catch (OperationCanceledException)
        {
            return (Math.Max(peak, LiveBenchShared.RssMb(server.Id)), timeline);
        }
    }

    /// <summary>The median of five readings of the process's resident memory, 250 ms apart.</summary>
    private static async Task<double> SteadyRssAsync(int pid, CancellationToken ct)
    {
        var readings = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            readings.Add(LiveBenchShared.RssMb(pid));
            await Task.Delay(250, ct);
        }

        readings.Sort();
        return readings[2];
    }
}
