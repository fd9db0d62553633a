using System.CommandLine;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Cli;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>
/// `tenants`: an honest tenant's push latency while another tenant sends the largest pushes the server
/// allows and holds stalled uploads open, on one server over a SQLite file.
/// </summary>
/// <remarks>
/// Phases, each timing the same honest pushes (one small document, one at a time): alone; while the attacker pushes, back
/// to back, a thousand contested patches of a 1 MB document in a collection a person settles, and full-size pushes of a
/// thousand documents as large as the request limit lets them be (8 KB at the default); and the same with 40 stalled HTTP uploads and 20 WebSockets holding unfinished messages on top,
/// from a third tenant.
/// </remarks>
internal static class TenantsBench
{
    private const string AttackScope = "team:attack";
    private const string HonestScope = "user:honest";
    private const string AttackSecret = "bench-attacker-secret-0123456789";
    private const string HonestSecret = "bench-honest-secret-0123456789";
    private const string StallerSecret = "bench-staller-secret-0123456789";

    /// <summary>The goal for the honest tenant's p99 while the attack runs.</summary>
    private const double GoalP99Ms = 100;

    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures to this JSON file." };
        var samples = new Option<int>("--samples") { Description = "Honest pushes timed per phase.", DefaultValueFactory = _ => 200 };
        var gap = new Option<int>("--gap-ms") { Description = "Pause between two honest pushes, in milliseconds.", DefaultValueFactory = _ => 10 };
        var maxRequest = new Option<long>("--max-request-bytes")
        {
            Description = "The server's MaxRequestBytes: the largest push the attacker sends and each stalled upload declares.",
            DefaultValueFactory = _ => new ConvergeServerOptions().MaxRequestBytes,
        };
        var command = new Command("tenants", "An honest tenant's push latency while another sends the largest allowed pushes and holds stalled uploads open.")
        {
            json, samples, gap, maxRequest,
        };
        command.SetAction((parse, ct) => RunAsync(parse.GetValue(samples), parse.GetValue(gap), parse.GetValue(maxRequest), parse.GetValue(json), ct));
        return command;
    }

    private static async Task<int> RunAsync(int samples, int gapMs, long maxRequestBytes, FileInfo? jsonFile, CancellationToken ct)
    {
        if (samples < 10 || gapMs < 0 || maxRequestBytes < 1_048_576 || maxRequestBytes > 64 * 1_048_576)
        {
            AnsiConsole.MarkupLine("[red]--samples must be at least 10, --gap-ms at least 0 and --max-request-bytes between 1 MiB and 64 MiB.[/]");
            return 2;
        }

        var folder = Directory.CreateTempSubdirectory("converge-bench-tenants-");
        var result = new JsonObject { ["benchmark"] = "tenants", ["machine"] = LiveBenchShared.Machine(), ["samples"] = samples, ["gap_ms"] = gapMs, ["max_request_bytes"] = maxRequestBytes };
        try
        {
            var (app, address) = await ServerHost.StartAsync(
                Path.Combine(folder.FullName, "sync.db"),
                "http://127.0.0.1:0",
                [new ApiKeySetting("attacker", AttackSecret, [AttackScope]), new ApiKeySetting("staller", StallerSecret, [AttackScope]), new ApiKeySetting("honest", HonestSecret, [HonestScope])],
                new Dictionary<string, CollectionRules> { ["notes"] = new() { Policy = ConflictPolicy.Manual } },
                LogLevel.None,
                ct,
                options =>
                {
                    options.MaxRequestBytes = maxRequestBytes;
                    options.MaxBytesInFlightPerConnection = Math.Max(options.MaxBytesInFlightPerConnection, 2 * maxRequestBytes);
                    options.MaxBytesInFlightPerPrincipal = Math.Max(options.MaxBytesInFlightPerPrincipal, 4 * maxRequestBytes);
                    options.MaxBytesInFlight = Math.Max(options.MaxBytesInFlight, 32 * maxRequestBytes);
                });
            await using var _ = app;
            using var bytesInFlight = new PeakGauge("converge.server.request_bytes_in_flight");
            var baseUri = new Uri(address, "/converge/");
            using var honest = Client(baseUri, HonestSecret);
            using var attacker = Client(baseUri, AttackSecret);
            var rows = new List<(string Phase, Stats Honest, string Attack)>();

            // The attacker's document: four 250 KB fields.
            var owner = new Writer();
            await PushAsync(attacker, owner.Batch([.. Enumerable.Range(0, 4).Select(i => owner.Mutation(AttackScope, "notes", "big", MutationKind.Patch, 0, $"f{i}", new string((char)('a' + i), 250_000)))]), ct);
            await WarmUpAsync(honest, samples / 4, ct);

            var alone = await MeasureAsync(honest, samples, gapMs, ct);
            rows.Add(("alone", alone, ""));
            Progress("alone", alone);

            using (var attack = new Attack(attacker, maxRequestBytes))
            {
                var loop = attack.RunPushesAsync();
                var busy = await MeasureAsync(honest, samples, gapMs, ct);
                var pushes = attack.Stop();
                await loop;
                rows.Add(("largest allowed pushes, back to back", busy, pushes));
                Progress("largest allowed pushes", busy);
            }

            using (var attack = new Attack(attacker, maxRequestBytes))
            {
                var stalled = Stalled.StartAsync(baseUri, StallerSecret, maxRequestBytes - 1, attack.Token);
                var loop = attack.RunPushesAsync();
                var busy = await MeasureAsync(honest, samples, gapMs, ct);
                var pushes = attack.Stop();
                await loop;
                var held = await stalled;
                rows.Add(("largest pushes + 40 stalled uploads + 20 unfinished live messages", busy, $"{pushes}; {held}"));
                Progress("with stalled uploads", busy);
            }

            var table = new Table().AddColumns("phase", "honest push p50 / p99 / max", "attacker");
            var phases = new JsonArray();
            foreach (var (phase, stats, attack) in rows)
            {
                table.AddRow(Markup.Escape(phase), $"{stats.P50:F1} / {stats.P99:F1} / {stats.Max:F1} ms", Markup.Escape(attack));
                phases.Add(new JsonObject
                {
                    ["phase"] = phase,
                    ["honest_p50_ms"] = Math.Round(stats.P50, 2),
                    ["honest_p99_ms"] = Math.Round(stats.P99, 2),
                    ["honest_max_ms"] = Math.Round(stats.Max, 2),
                    ["attacker"] = attack,
                });
            }

            var peakMb = Process.GetCurrentProcess().PeakWorkingSet64 / 1_000_000.0;
            table.AddRow("peak request bytes in flight (server)", $"{bytesInFlight.Peak / 1_048_576.0:F1} MiB", "");
            table.AddRow("peak working set (server and load, one process)", $"{peakMb:F0} MB", "");
            AnsiConsole.Write(table);
            result["phases"] = phases;
            result["peak_request_bytes_in_flight"] = bytesInFlight.Peak;
            result["peak_working_set_mb"] = Math.Round(peakMb);
            var worst = rows.Skip(1).Max(r => r.Honest.P99);
            result["worst_attack_p99_ms"] = Math.Round(worst, 2);
            result["goal_p99_ms"] = GoalP99Ms;
            AnsiConsole.MarkupLine(worst <= GoalP99Ms
                ? $"[green]The honest tenant's p99 under attack is {worst:F1} ms (goal {GoalP99Ms} ms).[/]"
                : $"[yellow]The honest tenant's p99 under attack is {worst:F1} ms, above the goal of {GoalP99Ms} ms.[/]");
            if (jsonFile is not null)
            {
                await File.WriteAllTextAsync(jsonFile.FullName, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
            }

            return 0;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                folder.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void Progress(string phase, Stats stats) =>
        AnsiConsole.MarkupLine($"[grey]{Markup.Escape(phase)}: p50 {stats.P50:F1} ms, p99 {stats.P99:F1} ms, max {stats.Max:F1} ms[/]");

    private static HttpClient Client(Uri baseUri, string secret)
    {
        var client = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromMinutes(5) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return client;
    }

    private static async Task<PushResponse> PushAsync(HttpClient client, PushRequest request, CancellationToken ct)
    {
        using var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.PushRequest));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync("v1/push", content, ct);
        var body = await response.Content.ReadAsByteArrayAsync(ct);
        return response.IsSuccessStatusCode
            ? JsonSerializer.Deserialize(body, ProtocolJson.PushResponse)!
            : throw new InvalidOperationException($"The push answered {(int)response.StatusCode}: {Encoding.UTF8.GetString(body)}");
    }

    private static async Task WarmUpAsync(HttpClient honest, int count, CancellationToken ct)
    {
        var writer = new Writer();
        for (var i = 0; i < count; i++)
        {
            await PushAsync(honest, writer.Batch(writer.Mutation(HonestScope, "todos", "warm" + i.ToString(CultureInfo.InvariantCulture), MutationKind.Put, 0, "title", "warm")), ct);
        }
    }

    /// <summary>Times honest pushes, one at a time, each one small document.</summary>
    private static async Task<Stats> MeasureAsync(HttpClient honest, int samples, int gapMs, CancellationToken ct)
    {
        var writer = new Writer();
        var latencies = new List<double>(samples);
        for (var i = 0; i < samples; i++)
        {
            var request = writer.Batch(writer.Mutation(HonestScope, "todos", "t" + i.ToString(CultureInfo.InvariantCulture), MutationKind.Put, 0, "title", "buy milk"));
            var start = Stopwatch.GetTimestamp();
            var response = await PushAsync(honest, request, ct);
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            if (response.Results[0].Status != MutationStatus.Applied)
            {
                throw new InvalidOperationException($"An honest push was answered {response.Results[0].Status}.");
            }

            if (gapMs > 0)
            {
                await Task.Delay(gapMs, ct);
            }
        }

        latencies.Sort();
        return new Stats(LiveBenchShared.Quantile(latencies, 0.5), LiveBenchShared.Quantile(latencies, 0.99), latencies[^1]);
    }

    private readonly record struct Stats(double P50, double P99, double Max);

    /// <summary>A client id, a clock and increasing mutation ids.</summary>
    private sealed class Writer
    {
        private readonly HybridClock _clock = new(ReplicaId.NewId(), TimeProvider.System);
        private long _next;

        public string Id => ReplicaId.Format(_clock.Node);

        public Mutation Mutation(string scope, string collection, string doc, MutationKind kind, long baseRevision, string field, string value) => new()
        {
            Id = ++_next,
            Scope = scope,
            Collection = collection,
            DocumentId = doc,
            Kind = kind,
            Hlc = _clock.Now(),
            BaseRevision = baseRevision,
            Fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal) { [field] = JsonElement.Parse("\"" + JsonEncodedText.Encode(value).Value + "\"") },
        };

        public PushRequest Batch(params Mutation[] mutations) => new() { ClientId = Id, Clock = _clock.Now(), Mutations = mutations };
    }

    /// <summary>The attacking tenant's pushes: the largest the server allows, back to back, until stopped.</summary>
    private sealed class Attack(HttpClient attacker, long maxRequestBytes) : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<double> _durations = [];
        private readonly List<string> _refused = [];
        private int _statusConflict;
        private int _statusRejected;
        private long _round;

        public CancellationToken Token => _stop.Token;

        public async Task RunPushesAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var round = _round++;

                // A new device each time: each opens a record of its own, until the cap per document rejects the rest.
                var device = new Writer();
                PushRequest request;
                if (round % 2 == 0)
                {
                    request = device.Batch([.. Enumerable.Range(0, 1_000).Select(i => device.Mutation(AttackScope, "notes", "big", MutationKind.Patch, 0, "f" + (i % 4).ToString(CultureInfo.InvariantCulture), "x" + i.ToString(CultureInfo.InvariantCulture)))]);
                }
                else
                {
                    request = LargestPuts(device, round);
                }

                var start = Stopwatch.GetTimestamp();
                try
                {
                    var response = await PushAsync(attacker, request, _stop.Token);
                    _durations.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    if (Environment.GetEnvironmentVariable("CONVERGE_BENCH_TRACE") is not null)
                    {
                        Console.Error.WriteLine($"attacker push {round} ({(round % 2 == 0 ? "contested" : "puts")}): {_durations[^1]:F0} ms");
                    }
                    _statusConflict += response.Results.Count(r => r.Status == MutationStatus.Conflict);
                    _statusRejected += response.Results.Count(r => r.Status == MutationStatus.Rejected);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                }
                catch (InvalidOperationException e)
                {
                    // Refused by a limit while the stalled uploads hold the attacker's budget: it tries again.
                    _refused.Add(e.Message.Length > 120 ? e.Message[..120] : e.Message);
                    await Task.Delay(50, CancellationToken.None);
                }
            }
        }

        /// <summary>A thousand puts of documents as large as the limit lets them be: the largest push the server takes.</summary>
        private PushRequest LargestPuts(Writer device, long round)
        {
            PushRequest Build(int size) => device.Batch([.. Enumerable.Range(0, 1_000).Select(i => device.Mutation(AttackScope, "docs", $"r{round}-{i}", MutationKind.Put, 0, "body", new string('y', size)))]);
            var size = (int)(maxRequestBytes / 1_000);
            while (true)
            {
                var request = Build(size);
                var bytes = JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.PushRequest).Length;
                if (bytes <= maxRequestBytes)
                {
                    return request;
                }

                size -= (int)((bytes - maxRequestBytes) / 1_000) + 8;
            }
        }

        /// <summary>Stops the pushes and says what they did.</summary>
        public string Stop()
        {
            _stop.Cancel();
            _durations.Sort();
            var refused = _refused.Count == 0
                ? ""
                : "; refused " + string.Join(", ", _refused.GroupBy(r => r[..Math.Min(r.Length, 40)], StringComparer.Ordinal).Select(g => $"{g.Count()} times \"{g.Key}…\""));
            return (_durations.Count == 0
                ? "no push completed"
                : $"{_durations.Count} pushes of 1,000 mutations (p50 {LiveBenchShared.Quantile(_durations, 0.5):F0} ms, max {_durations[^1]:F0} ms; {_statusConflict} contested, {_statusRejected} rejected)") + refused;
        }

        public void Dispose() => _stop.Dispose();
    }

    /// <summary>Uploads that never finish: HTTP pushes that stall just before their end, WebSocket messages that never end.</summary>
    private static class Stalled
    {
        /// <summary>Keeps 40 stalled HTTP pushes and 20 unfinished live messages open until stopped; says how each was answered.</summary>
        /// <param name="baseUri">The server.</param>
        /// <param name="secret">The stalling tenant's API key.</param>
        /// <param name="declared">What each upload declares: one byte under the server's limit.</param>
        /// <param name="stop">Ends the uploads.</param>
        public static async Task<string> StartAsync(Uri baseUri, string secret, long declared, CancellationToken stop)
        {
            var answers = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
            var http = Enumerable.Range(0, 40).Select(_ => Task.Run(() => HttpLoopAsync(baseUri, secret, declared, answers, stop), CancellationToken.None));
            var live = Enumerable.Range(0, 20).Select(i => Task.Run(() => LiveLoopAsync(baseUri, secret, i, declared, answers, stop), CancellationToken.None));
            await Task.WhenAll(http.Concat(live));
            return string.Join(", ", answers.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key}: {a.Value}"));
        }

        private static async Task HttpLoopAsync(Uri baseUri, string secret, long declared, System.Collections.Concurrent.ConcurrentDictionary<string, int> answers, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                using var tcp = new TcpClient { NoDelay = true };
                try
                {
                    await tcp.ConnectAsync(baseUri.Host, baseUri.Port, stop);
                    var stream = tcp.GetStream();
                    var head = $"POST {baseUri.AbsolutePath.TrimEnd('/')}/v1/push HTTP/1.1\r\nHost: {baseUri.Authority}\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n";
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(head), stop);
                    var reading = ReadAnswerAsync(stream, stop);
                    var chunk = new byte[64 * 1024];
                    chunk.AsSpan().Fill((byte)' ');
                    try
                    {
                        for (long sent = 0; sent < declared - 1024 && !reading.IsCompleted; sent += chunk.Length)
                        {
                            await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, declared - 1024 - sent)), stop);
                        }
                    }
                    catch (IOException)
                    {
                        // Refused and closed while sending.
                    }

                    var status = await reading;
                    answers.AddOrUpdate("http " + status, 1, (_, n) => n + 1);
                    if (status == "429")
                    {
                        await Task.Delay(1_000, stop);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
                {
                    if (stop.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
        }

        private static async Task<string> ReadAnswerAsync(NetworkStream stream, CancellationToken stop)
        {
            var buffer = new byte[16 * 1024];
            var total = 0;
            try
            {
                int read;
                while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), stop)) > 0)
                {
                    total += read;
                    if (total >= 12)
                    {
                        break;
                    }
                }
            }
            catch (IOException)
            {
            }

            var text = Encoding.ASCII.GetString(buffer, 0, total);
            return text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) && text.Length >= 12 ? text.Substring(9, 3) : "closed";
        }

        private static async Task LiveLoopAsync(Uri baseUri, string secret, int index, long declared, System.Collections.Concurrent.ConcurrentDictionary<string, int> answers, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                using var socket = new ClientWebSocket();
                socket.Options.CollectHttpResponseDetails = true;
                socket.Options.SetRequestHeader("Authorization", "Bearer " + secret);
                var url = new UriBuilder(baseUri) { Scheme = "ws", Path = baseUri.AbsolutePath.TrimEnd('/') + "/v1/live", Query = "scope=" + Uri.EscapeDataString(AttackScope) }.Uri;
                try
                {
                    try
                    {
                        await socket.ConnectAsync(url, stop);
                    }
                    catch (WebSocketException)
                    {
                        answers.AddOrUpdate("live refused " + ((int)socket.HttpStatusCode).ToString(CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                        await Task.Delay(1_000, stop);
                        continue;
                    }

                    var receiving = ReceiveUntilClosedAsync(socket, stop);
                    var head = Encoding.UTF8.GetBytes($$"""{"type":"push","request":{{index + 1}},"push":{"client":"00000000000000a1","clock":"000000000001-0000-00000000000000a1","mutations":[{"id":1,"scope":"{{AttackScope}}","collection":"bench","doc":"big","op":"put","hlc":"000000000001-0000-00000000000000a1","fields":{"pad":" """);
                    await socket.SendAsync(head, WebSocketMessageType.Text, endOfMessage: false, stop);
                    var pad = new byte[64 * 1024];
                    pad.AsSpan().Fill((byte)'x');
                    try
                    {
                        for (long sent = head.Length; sent < declared - 1024 && !receiving.IsCompleted; sent += pad.Length)
                        {
                            await socket.SendAsync(pad, WebSocketMessageType.Text, endOfMessage: false, stop);
                        }
                    }
                    catch (WebSocketException)
                    {
                    }

                    answers.AddOrUpdate("live " + await receiving, 1, (_, n) => n + 1);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }

        private static async Task<string> ReceiveUntilClosedAsync(ClientWebSocket socket, CancellationToken stop)
        {
            var buffer = new byte[64 * 1024];
            var refused = false;
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveAsync(buffer, stop);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        return refused ? "error 429, then closed " + (int?)socket.CloseStatus : "closed " + (int?)socket.CloseStatus;
                    }

                    refused |= Encoding.UTF8.GetString(buffer, 0, received.Count).Contains("\"status\":429", StringComparison.Ordinal);
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                return refused ? "error 429, then stopped" : "stopped";
            }
        }
    }

    /// <summary>The peak of one of the server's gauges, read in this process.</summary>
    private sealed class PeakGauge : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Timer _timer;
        private long _peak;

        public PeakGauge(string instrument)
        {
            _listener.InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == "Converge.Server" && i.Name == instrument)
                {
                    l.EnableMeasurementEvents(i);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => InterlockedMax(value));
            _listener.SetMeasurementEventCallback<int>((_, value, _, _) => InterlockedMax(value));
            _listener.Start();
            _timer = new Timer(_ => _listener.RecordObservableInstruments(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(20));
        }

        public long Peak => Interlocked.Read(ref _peak);

        public void Dispose()
        {
            _timer.Dispose();
            _listener.Dispose();
        }

        private void InterlockedMax(long value)
        {
            long seen;
            while (value > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, value, seen) != seen)
            {
            }
        }
    }
}
