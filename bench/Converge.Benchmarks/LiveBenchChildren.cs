using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Converge.Cli;
using Converge.Client;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Benchmarks;

/// <summary>The document the live workloads write: a sequence number, the writer's <see cref="Stopwatch"/> timestamp taken just before the write, and a 40-character title.</summary>
internal sealed record LiveDoc(long Seq, long T, string Title)
{
    public static LiveDoc Create(long seq, long timestamp) =>
        new(seq, timestamp, ("Live document number " + seq.ToString("D8", CultureInfo.InvariantCulture)).PadRight(40, '.'));
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LiveDoc))]
internal sealed partial class LiveBenchJson : JsonSerializerContext;

/// <summary>
/// The child processes of `live` and `fanout`: a device (a full <see cref="ConvergeClient"/>
/// with its live connection, driven line by line over stdin), and listeners (many bare WebSockets speaking the live
/// protocol, for the fan-out and the idle connections).
/// </summary>
internal static class LiveBenchChildren
{
    public static Command CreateDevice()
    {
        var command = new Command("device", "Internal: a device of the live benchmarks, driven by commands on stdin.") { Hidden = true };
        command.SetAction((_, ct) => RunDeviceAsync(ct));
        return command;
    }

    public static Command CreateListeners()
    {
        var command = new Command("listeners", "Internal: bare live-protocol WebSocket clients of the fan-out benchmark, driven by commands on stdin.") { Hidden = true };
        command.SetAction((_, ct) => RunListenersAsync(ct));
        return command;
    }

    /// <summary>A sync server like `sync server`'s (same host, API key and logging; on SQLite, or on PostgreSQL with --postgres), which also answers "jit", and "memory" (and "gc": a full, compacting collection first) with its managed heap and resident memory.</summary>
    public static Command CreateServer()
    {
        var db = new Option<FileInfo>("--db") { Required = true };
        var postgres = new Option<string?>("--postgres") { Description = "Keep the data in this PostgreSQL database instead of --db; every server on the same database is a node of one cluster." };
        var command = new Command("server", "Internal: a sync server for the live benchmarks; prints its address, answers memory commands, runs until stdin closes.") { db, postgres };
        command.Hidden = true;
        command.SetAction((parse, ct) => RunServerAsync(parse.GetValue(db)!.FullName, parse.GetValue(postgres), ct));
        return command;
    }

    private static async Task<int> RunServerAsync(string db, string? postgres, CancellationToken ct)
    {
        ApiKeySetting[] keys = [new("bench", SyncBenchChildren.ApiKey, ["*"])];
        // Its log goes to stderr: stdout carries the answers to the commands.
        var (app, address) = await ServerHost.StartAsync(
            db,
            "http://127.0.0.1:0",
            keys,
            null,
            LogLevel.Warning,
            ct,
            // Every connection of the fan-out (thousands) uses the one benchmark key, where a real deployment has one
            // principal per user: the per-principal caps would refuse all but a few, so they are lifted here.
            configure: options =>
            {
                options.MaxLiveConnectionsPerPrincipal = int.MaxValue;
                options.MaxConcurrentRequestsPerPrincipal = int.MaxValue;
            },
            settings: new Dictionary<string, string?> { ["Logging:Console:LogToStandardErrorThreshold"] = "Trace" },
            postgres: postgres);
        await using (app)
        {
            Console.WriteLine("READY " + address);
            await CommandLoopAsync(
                (a, _) =>
                {
                    if (a[0] is not ("memory" or "gc"))
                    {
                        throw new ArgumentException("Unknown command " + a[0]);
                    }

                    if (a[0] == "gc")
                    {
                        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                        GC.WaitForPendingFinalizers();
                        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                    }

                    // Managed bytes in use (after "gc": live), the GC's committed bytes, resident memory, threads.
                    var info = GC.GetGCMemoryInfo();
                    using var self = Process.GetCurrentProcess();
                    return Task.FromResult(string.Join(' ', new[]
                    {
                        GC.GetTotalMemory(false), info.TotalCommittedBytes, self.WorkingSet64, self.Threads.Count,
                    }.Select(v => v.ToString(CultureInfo.InvariantCulture))));
                },
                ct);
            await app.StopAsync(CancellationToken.None);
        }

        return 0;
    }

    private static long Now() => Stopwatch.GetTimestamp();

    private static int Int(string text) => int.Parse(text, CultureInfo.InvariantCulture);

    /// <summary>Reads commands from stdin and answers each with one line: "OK ..." or "ERR ...".</summary>
    internal static async Task<int> CommandLoopAsync(Func<string[], CancellationToken, Task<string>> execute, CancellationToken ct)
    {
        while (await Console.In.ReadLineAsync(ct) is { } line)
        {
            var args = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (args.Length == 0)
            {
                continue;
            }

            if (args[0] == "exit")
            {
                break;
            }

            string reply;
            try
            {
                // jit: methods this process has compiled so far (tier-up recompilations included), for warm-ups that wait
                // until the code they run is optimized.
                reply = "OK " + (args[0] == "jit"
                    ? System.Runtime.JitInfo.GetCompiledMethodCount().ToString(CultureInfo.InvariantCulture)
                    : await execute(args, ct));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                reply = "ERR " + e.ToString().ReplaceLineEndings(" | ");
            }

            Console.WriteLine(reply);
        }

        return 0;
    }

    // ---- device: a ConvergeClient with its live connection ----

    private sealed class Device(ConvergeClient client)
    {
        public ConvergeClient Client { get; } = client;

        /// <summary>The first remote arrival of each document id, as a <see cref="Stopwatch"/> timestamp.</summary>
        public ConcurrentDictionary<string, long> Arrived { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<string, TaskCompletionSource<long>> Waiters { get; } = new(StringComparer.Ordinal);

        public void OnChanged(object? sender, DocumentChangedEventArgs<LiveDoc> e)
        {
            if (e.Origin != ChangeOrigin.Remote)
            {
                return;
            }

            // The timestamp first: nothing else is part of the measured interval.
            var now = Now();
            if (Arrived.TryAdd(e.Id, now) && Waiters.TryGetValue(e.Id, out var waiter))
            {
                waiter.TrySetResult(now);
            }
        }
    }

    private static async Task<int> RunDeviceAsync(CancellationToken ct)
    {
        var devices = new Dictionary<string, Device>(StringComparer.Ordinal);
        try
        {
            return await CommandLoopAsync((a, token) => ExecuteDeviceAsync(devices, a, token), ct);
        }
        finally
        {
            foreach (var device in devices.Values)
            {
                await device.Client.Live.StopAsync();
                await device.Client.DisposeAsync();
            }
        }
    }

    private static async Task<string> ExecuteDeviceAsync(Dictionary<string, Device> devices, string[] a, CancellationToken ct)
    {
        switch (a[0])
        {
            case "open":
            {
                // open NAME DB URL SCOPE
                devices[a[1]] = new Device(await ConvergeClient.OpenAsync(SyncBenchChildren.ClientOptions(a), ct));
                return "";
            }

            case "live":
            {
                // live NAME: starts the live connection and waits until it is live (connected and caught up).
                var client = devices[a[1]].Client;
                client.Live.Start();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(60));
                await client.Live.WaitForStatusAsync(LiveStatus.Live, timeout.Token);
                return "";
            }

            case "status":
            {
                // status NAME: the live status and the last error, if any.
                var live = devices[a[1]].Client.Live;
                return $"{live.Status} {(live.LastError is { } e ? e.GetType().Name + ": " + e.Message.ReplaceLineEndings(" ") : "-")}";
            }

            case "watch":
            {
                // watch NAME COLLECTION: records when each remote change of the collection arrives.
                var device = devices[a[1]];
                device.Client.Collection(a[2], LiveBenchJson.Default.LiveDoc).Changed += device.OnChanged;
                return "";
            }

            case "put":
            {
                // put NAME COLLECTION ID SEQ: one document, stamped just before the write; answers that stamp and when the write returned.
                var collection = devices[a[1]].Client.Collection(a[2], LiveBenchJson.Default.LiveDoc);
                var start = Now();
                await collection.PutAsync(a[3], LiveDoc.Create(long.Parse(a[4], CultureInfo.InvariantCulture), start), ct);
                return $"{start} {Now()}";
            }

            case "await":
            {
                // await NAME ID TIMEOUT_MS: when the remote change of the document arrived, or -1 when it did not within the timeout.
                var device = devices[a[1]];
                var id = a[2];
                var waiter = device.Waiters.GetOrAdd(id, _ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously));
                if (device.Arrived.TryGetValue(id, out var arrived))
                {
                    waiter.TrySetResult(arrived);
                }

                try
                {
                    return (await waiter.Task.WaitAsync(TimeSpan.FromMilliseconds(Int(a[3])), ct)).ToString(CultureInfo.InvariantCulture);
                }
                catch (TimeoutException)
                {
                    return "-1";
                }
                finally
                {
                    device.Waiters.TryRemove(id, out _);
                }
            }

            case "rate":
            {
                // rate NAME COLLECTION FROM COUNT RATE: COUNT documents (ids COLLECTION-SEQ) at RATE per second, each stamped
                // just before its write, on a fixed schedule (a late write does not delay the next ones).
                var collection = devices[a[1]].Client.Collection(a[2], LiveBenchJson.Default.LiveDoc);
                int from = Int(a[3]), count = Int(a[4]);
                var period = Stopwatch.Frequency / double.Parse(a[5], CultureInfo.InvariantCulture);
                var start = Now();
                long late = 0;
                for (var k = 0; k < count; k++)
                {
                    var due = start + (long)(k * period);
                    var wait = due - Now();
                    if (wait > Stopwatch.Frequency / 1_000)
                    {
                        await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), ct);
                    }

                    var stamp = Now();
                    late = Math.Max(late, stamp - due);
                    var seq = from + k;
                    await collection.PutAsync(a[2] + "-" + seq.ToString("D7", CultureInfo.InvariantCulture), LiveDoc.Create(seq, stamp), ct);
                }

                return $"{start} {Now()} {count} {late}";
            }

            case "sync":
                await devices[a[1]].Client.SyncAsync(null, ct);
                return "";

            case "tap":
            {
                // tap URL SCOPE COLLECTION: a bare live connection in this process that notes when each document's change
                // message arrives, before any client code sees it (to split the latency into network and client parts).
                var server = new Uri(a[1]);
                var socket = new ClientWebSocket();
                socket.Options.SetRequestHeader("Authorization", "Bearer " + SyncBenchChildren.ApiKey);
                await socket.ConnectAsync(new Uri($"ws://{server.Authority}/converge/v1/live?scope={Uri.EscapeDataString(a[2])}"), ct);
                var collection = Encoding.UTF8.GetBytes(a[3]);
                _ = Task.Run(() => TapAsync(socket, collection), CancellationToken.None);
                return "";
            }

            case "tapped":
            {
                // tapped SEQ TIMEOUT_MS: when the tap saw the document's change message, or -1 when it did not within the timeout.
                var seen = Tapped.GetOrAdd(long.Parse(a[1], CultureInfo.InvariantCulture), _ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously));
                try
                {
                    return (await seen.Task.WaitAsync(TimeSpan.FromMilliseconds(Int(a[2])), ct)).ToString(CultureInfo.InvariantCulture);
                }
                catch (TimeoutException)
                {
                    return "-1";
                }
            }

            case "rawopen":
            {
                // rawopen URL SCOPE: a bare live connection for "rawpush", as a client of its own.
                var server = new Uri(a[1]);
                var socket = new ClientWebSocket();
                socket.Options.SetRequestHeader("Authorization", "Bearer " + SyncBenchChildren.ApiKey);
                await socket.ConnectAsync(new Uri($"ws://{server.Authority}/converge/v1/live?scope={Uri.EscapeDataString(a[2])}"), ct);
                RawPusher = (socket, new HybridClock(ReplicaId.NewId()), a[2]);

                // Its answers and the changes it is sent are read and dropped.
                _ = Task.Run(() => TapAsync(socket, null), CancellationToken.None);
                return "";
            }

            case "rawpush":
            {
                // rawpush COLLECTION ID SEQ: a push of one document over the bare connection, stamped just before it is built;
                // answers the stamp (the answer is not waited for).
                var (socket, clock, scope) = RawPusher ?? throw new InvalidOperationException("rawopen first.");
                var start = Now();
                var doc = LiveDoc.Create(long.Parse(a[3], CultureInfo.InvariantCulture), start);
                var id = ++_rawMutation;
                var push = new PushRequest
                {
                    ClientId = ReplicaId.Format(clock.Node),
                    Clock = clock.Now(),
                    Mutations =
                    [
                        new Mutation
                        {
                            Id = id,
                            Scope = scope,
                            Collection = a[1],
                            DocumentId = a[2],
                            Kind = MutationKind.Put,
                            Hlc = clock.Now(),
                            Fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal)
                            {
                                ["seq"] = JsonElement.Parse(doc.Seq.ToString(CultureInfo.InvariantCulture)),
                                ["t"] = JsonElement.Parse(doc.T.ToString(CultureInfo.InvariantCulture)),
                                ["title"] = JsonElement.Parse("\"" + doc.Title + "\""),
                            },
                        },
                    ],
                };
                var message = Encoding.UTF8.GetBytes($"{{\"type\":\"push\",\"request\":{id},\"push\":")
                    .Concat(JsonSerializer.SerializeToUtf8Bytes(push, ProtocolJson.PushRequest))
                    .Append((byte)'}')
                    .ToArray();
                await socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, ct);
                return start.ToString(CultureInfo.InvariantCulture);
            }

            default:
                throw new ArgumentException("Unknown command " + a[0]);
        }
    }

    private static readonly ConcurrentDictionary<long, TaskCompletionSource<long>> Tapped = new();

    private static (ClientWebSocket Socket, HybridClock Clock, string Scope)? RawPusher { get; set; }

    private static long _rawMutation;

    private static async Task TapAsync(ClientWebSocket socket, byte[]? collection)
    {
        var buffer = new byte[64 * 1024];
        var found = new List<(long Seq, long Stamp)>();
        var length = 0;
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                length += result.Count;
                if (!result.EndOfMessage)
                {
                    if (length == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    continue;
                }

                var now = Now();
                found.Clear();
                if (collection is not null)
                {
                    LivePage.Parse(buffer.AsSpan(0, length), framed: true, collection, found);
                }

                length = 0;
                foreach (var (seq, _) in found)
                {
                    Tapped.GetOrAdd(seq, _ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(now);
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException)
        {
            // The process ends.
        }
    }

    // ---- listeners: bare WebSockets speaking the live protocol ----

    private static async Task<int> RunListenersAsync(CancellationToken ct)
    {
        var listeners = new Listeners();
        try
        {
            return await CommandLoopAsync(listeners.ExecuteAsync, ct);
        }
        finally
        {
            listeners.Abort();
        }
    }

    /// <summary>
    /// Many live connections in one process, each with its own receive loop: it reads every message, finds the documents
    /// of the run's collection in each <c>changes</c> page (their <c>seq</c> and <c>t</c> fields, in the state's JSON), and
    /// counts each write once per connection with its delivery latency. On a <c>poke</c> it pulls the scope over HTTP from
    /// its cursor, as a client would, and counts what the pull brings.
    /// </summary>
    private sealed class Listeners
    {
        private readonly List<Connection> _connections = [];
        private readonly SocketsHttpHandler _handler = new() { MaxConnectionsPerServer = int.MaxValue, UseCookies = false };
        private HttpClient? _http;
        private Uri? _server;
        private string _scope = "";
        private int _ready;
        private int _failed;
        private int _closed;
        private Run? _run;

        public async Task<string> ExecuteAsync(string[] a, CancellationToken ct)
        {
            switch (a[0])
            {
                case "connect":
                {
                    // connect URL SCOPE COUNT PARALLEL: opens COUNT live connections following SCOPE; answers when every one has
                    // received "ready" (or failed): ready count, failures, start and end.
                    _server = new Uri(a[1]);
                    _scope = a[2];
                    _http ??= new HttpClient(_handler, disposeHandler: false) { BaseAddress = _server };
                    int count = Int(a[3]), parallel = Int(a[4]);
                    var live = new Uri($"ws://{_server.Authority}/converge/v1/live?scope={Uri.EscapeDataString(_scope)}");
                    var invoker = new HttpMessageInvoker(_handler, disposeHandler: false);
                    var start = Now();
                    using var gate = new SemaphoreSlim(parallel);
                    var target = _ready + _failed + count;
                    var opening = new List<Task>(count);
                    for (var i = 0; i < count; i++)
                    {
                        await gate.WaitAsync(ct);
                        var connection = new Connection(this, _connections.Count);
                        _connections.Add(connection);
                        opening.Add(OpenAsync(connection, live, invoker, gate, ct));
                    }

                    await Task.WhenAll(opening);
                    return $"{Volatile.Read(ref _ready)} {Volatile.Read(ref _failed)} {start} {Now()}";
                }

                case "arm":
                {
                    // arm COLLECTION WRITES: from now, count the documents of COLLECTION with seq 0..WRITES-1.
                    Volatile.Write(ref _run, new Run(a[1], Int(a[2]), _connections.Count));
                    return "";
                }

                case "progress":
                {
                    // progress: deliveries counted so far (each write once per connection), and connections closed.
                    var run = Volatile.Read(ref _run);
                    return $"{(run is null ? 0 : Interlocked.Read(ref run.Delivered))} {Volatile.Read(ref _closed)}";
                }

                case "report":
                {
                    // report FILE: writes the latency histogram to FILE; answers the counts.
                    var run = Volatile.Read(ref _run) ?? throw new InvalidOperationException("Not armed.");
                    var complete = 0;
                    var least = int.MaxValue;
                    for (var c = 0; c < run.Seen.Length; c++)
                    {
                        var got = run.PerConnection[c];
                        least = Math.Min(least, got);
                        if (got == run.Writes)
                        {
                            complete++;
                        }
                    }

                    await File.WriteAllLinesAsync(a[1], run.Histogram.Lines(), ct);
                    await File.WriteAllLinesAsync(a[1] + ".last", run.Last.Select(t => t.ToString(CultureInfo.InvariantCulture)), ct);
                    return string.Join(' ', new long[]
                    {
                        run.Seen.Length, Interlocked.Read(ref run.Delivered), Interlocked.Read(ref run.Duplicates), Interlocked.Read(ref run.Pokes),
                        Interlocked.Read(ref run.Pulled), Interlocked.Read(ref run.Frames), complete, least == int.MaxValue ? 0 : least, Volatile.Read(ref _closed),
                    }.Select(v => v.ToString(CultureInfo.InvariantCulture)));
                }

                default:
                    throw new ArgumentException("Unknown command " + a[0]);
            }
        }

        public void Abort()
        {
            foreach (var connection in _connections)
            {
                connection.Socket.Abort();
            }
        }

        private async Task OpenAsync(Connection connection, Uri live, HttpMessageInvoker invoker, SemaphoreSlim gate, CancellationToken ct)
        {
            try
            {
                var socket = connection.Socket;
                socket.Options.SetRequestHeader("Authorization", "Bearer " + SyncBenchChildren.ApiKey);

                // No pings of its own: the server's keep-alive pings are answered by the pending receive.
                socket.Options.KeepAliveInterval = TimeSpan.Zero;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(60));
                await socket.ConnectAsync(live, invoker, timeout.Token);
                var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _ = Task.Run(() => connection.ReceiveLoopAsync(ready), CancellationToken.None);
                await ready.Task.WaitAsync(timeout.Token);
                Interlocked.Increment(ref _ready);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or HttpRequestException or InvalidOperationException)
            {
                if (Interlocked.Increment(ref _failed) <= 3)
                {
                    await Console.Error.WriteLineAsync("connect failed: " + e.Message);
                }
            }
            finally
            {
                gate.Release();
            }
        }

        private sealed class Connection(Listeners owner, int index)
        {
            private readonly List<(long Seq, long Stamp)> _found = [];
            private long _cursor = -1;

            public ClientWebSocket Socket { get; } = new();

            public async Task ReceiveLoopAsync(TaskCompletionSource ready)
            {
                var buffer = new byte[2048];
                var length = 0;
                try
                {
                    while (true)
                    {
                        if (length == buffer.Length)
                        {
                            Array.Resize(ref buffer, buffer.Length * 2);
                        }

                        var result = await Socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                        if (result.MessageType == WebSocketMessageType.Close)
                        {
                            break;
                        }

                        length += result.Count;
                        if (!result.EndOfMessage)
                        {
                            continue;
                        }

                        var received = Now();
                        var message = buffer.AsMemory(0, length);
                        length = 0;
                        var run = Volatile.Read(ref owner._run);
                        _found.Clear();
                        var parsed = LivePage.Parse(message.Span, framed: true, run?.Collection, _found);
                        switch (parsed.Kind)
                        {
                            case LivePage.MessageKind.Ready:
                                ready.TrySetResult();
                                break;
                            case LivePage.MessageKind.Changes:
                                _cursor = Math.Max(_cursor, parsed.Cursor);
                                run?.Count(index, _found, received, pulled: false);
                                break;
                            case LivePage.MessageKind.Poke:
                                if (run is not null)
                                {
                                    Interlocked.Increment(ref run.Pokes);
                                }

                                await PullAsync(run);
                                break;
                        }
                    }
                }
                catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException or HttpRequestException or JsonException)
                {
                    ready.TrySetException(e);
                }

                Interlocked.Increment(ref owner._closed);
                ready.TrySetException(new WebSocketException("Closed before ready."));
            }

            /// <summary>Pulls the scope from this connection's cursor to its end, counting what it brings.</summary>
            private async Task PullAsync(Run? run)
            {
                var more = true;
                while (more)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, $"converge/v1/pull?scope={Uri.EscapeDataString(owner._scope)}&after={Math.Max(0, _cursor)}&limit=5000");
                    request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + SyncBenchChildren.ApiKey);
                    using var response = await owner._http!.SendAsync(request);
                    response.EnsureSuccessStatusCode();
                    var body = await response.Content.ReadAsByteArrayAsync();
                    var received = Now();
                    _found.Clear();
                    var parsed = LivePage.Parse(body, framed: false, run?.Collection, _found);
                    _cursor = Math.Max(_cursor, parsed.Cursor);
                    run?.Count(index, _found, received, pulled: true);
                    more = parsed.HasMore;
                }
            }
        }
    }

    /// <summary>The counts of one armed run in one listener process.</summary>
    private sealed class Run
    {
        public long Delivered;
        public long Duplicates;
        public long Pokes;
        public long Pulled;
        public long Frames;

        public Run(string collection, int writes, int connections)
        {
            Collection = Encoding.UTF8.GetBytes(collection);
            Writes = writes;
            Seen = new bool[connections][];
            PerConnection = new int[connections];
            Last = new long[writes];
        }

        /// <summary>Gets, per write, its latest delivery to any connection of this process, in <see cref="Stopwatch"/> ticks after the write.</summary>
        public long[] Last { get; }

        public byte[] Collection { get; }

        public int Writes { get; }

        public bool[][] Seen { get; }

        public int[] PerConnection { get; }

        public LatencyHistogram Histogram { get; } = new();

        /// <summary>Counts the documents one connection received (on its own receive loop: one thread at a time per connection).</summary>
        public void Count(int connection, List<(long Seq, long Stamp)> found, long received, bool pulled)
        {
            if (connection >= Seen.Length)
            {
                return;
            }

            Interlocked.Increment(ref Frames);
            var seen = Seen[connection] ??= new bool[Writes];
            foreach (var (seq, stamp) in found)
            {
                if (seq < 0 || seq >= Writes)
                {
                    continue;
                }

                if (seen[seq])
                {
                    Interlocked.Increment(ref Duplicates);
                    continue;
                }

                seen[seq] = true;
                PerConnection[connection]++;
                Interlocked.Increment(ref Delivered);
                if (pulled)
                {
                    Interlocked.Increment(ref Pulled);
                }

                var latency = received - stamp;
                Histogram.Add(latency);
                var last = Volatile.Read(ref Last[seq]);
                while (latency > last && Interlocked.CompareExchange(ref Last[seq], latency, last) is var seen2 && seen2 != last)
                {
                    last = seen2;
                }
            }
        }
    }
}

/// <summary>Delivery latencies in microsecond buckets up to one second, then millisecond buckets up to a minute; safe to add to from many threads.</summary>
internal sealed class LatencyHistogram
{
    private const int Fine = 1_000_000;
    private const int Coarse = 60_000;
    private readonly long[] _counts = new long[Fine + Coarse + 1];

    public void Add(long stopwatchTicks)
    {
        var us = Math.Max(0, stopwatchTicks) * 1_000_000 / Stopwatch.Frequency;
        Interlocked.Increment(ref _counts[Index(us)]);
    }

    /// <summary>Adds the lines of another histogram written by <see cref="Lines"/>.</summary>
    public void Merge(IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            _counts[int.Parse(line.AsSpan(0, space), CultureInfo.InvariantCulture)] += long.Parse(line.AsSpan(space + 1), CultureInfo.InvariantCulture);
        }
    }

    /// <summary>One "bucket count" line per bucket that holds anything.</summary>
    public IEnumerable<string> Lines()
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            if (_counts[i] != 0)
            {
                yield return i.ToString(CultureInfo.InvariantCulture) + " " + _counts[i].ToString(CultureInfo.InvariantCulture);
            }
        }
    }

    public long Total => _counts.Sum();

    /// <summary>The latency at a quantile (nearest rank), in milliseconds: the upper edge of its bucket.</summary>
    public double Quantile(double q)
    {
        var total = Total;
        if (total == 0)
        {
            return double.NaN;
        }

        var rank = (long)Math.Ceiling(q * total);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= Math.Max(1, rank))
            {
                return UpperMs(i);
            }
        }

        return UpperMs(_counts.Length - 1);
    }

    public double MaxMs()
    {
        for (var i = _counts.Length - 1; i >= 0; i--)
        {
            if (_counts[i] != 0)
            {
                return UpperMs(i);
            }
        }

        return double.NaN;
    }

    /// <summary>The share of latencies at or under a bound.</summary>
    public double ShareAtMost(double ms)
    {
        var total = Total;
        long under = 0;
        for (var i = 0; i < _counts.Length && UpperMs(i) <= ms; i++)
        {
            under += _counts[i];
        }

        return total == 0 ? double.NaN : (double)under / total;
    }

    private static int Index(long us) => us < Fine ? (int)us : Fine + (int)Math.Min(Coarse, (us - Fine) / 1_000);

    private static double UpperMs(int index) => index < Fine ? (index + 1) / 1_000.0 : 1_000.0 + (index - Fine + 1);
}

/// <summary>Reads just enough of a live message or a pull response: its kind, cursor, and the <c>seq</c> and <c>t</c> of each document of one collection.</summary>
/// <remarks>A document's state is <c>{"f":{"name":{"v":value,"h":stamp,...},...},...}</c> (<see cref="Protocol.Documents.DocumentState"/>).</remarks>
internal static class LivePage
{
    public enum MessageKind
    {
        Other,
        Ready,
        Changes,
        Poke,
    }

    private enum Name : byte
    {
        Other,
        Type,
        Page,
        Cursor,
        HasMore,
        Changes,
        Collection,
        State,
        Fields,
        Seq,
        Stamp,
        Value,
    }

    public readonly record struct Parsed(MessageKind Kind, long Cursor, bool HasMore);

    /// <summary>Parses a live message (<paramref name="framed"/>: the page is its <c>page</c> member) or a pull response (the page itself).</summary>
    public static Parsed Parse(ReadOnlySpan<byte> json, bool framed, byte[]? collection, List<(long Seq, long Stamp)> found)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        Span<Name> names = stackalloc Name[66];
        names.Clear();
        var o = framed ? 1 : 0;
        var kind = framed ? MessageKind.Other : MessageKind.Changes;
        long cursor = -1;
        var hasMore = false;
        long seq = -1, stamp = 0;
        var matches = false;
        while (reader.Read())
        {
            var d = reader.CurrentDepth;
            var inPage = !framed || names[1] == Name.Page;
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    names[d] = Classify(ref reader);
                    break;
                case JsonTokenType.String:
                    if (framed && d == 1 && names[1] == Name.Type)
                    {
                        kind = reader.ValueTextEquals("changes"u8) ? MessageKind.Changes
                            : reader.ValueTextEquals("poke"u8) ? MessageKind.Poke
                            : reader.ValueTextEquals("ready"u8) ? MessageKind.Ready
                            : MessageKind.Other;
                    }
                    else if (inPage && d == o + 3 && names[o + 1] == Name.Changes && names[d] == Name.Collection)
                    {
                        matches = collection is not null && reader.ValueTextEquals(collection);
                    }

                    break;
                case JsonTokenType.Number:
                    if (inPage && d == o + 1 && names[d] == Name.Cursor)
                    {
                        cursor = reader.GetInt64();
                    }
                    else if (inPage && d == o + 6 && names[d] == Name.Value && names[o + 4] == Name.Fields && names[o + 3] == Name.State && names[o + 1] == Name.Changes)
                    {
                        if (names[o + 5] == Name.Seq)
                        {
                            seq = reader.GetInt64();
                        }
                        else if (names[o + 5] == Name.Stamp)
                        {
                            stamp = reader.GetInt64();
                        }
                    }

                    break;
                case JsonTokenType.True:
                    if (inPage && d == o + 1 && names[d] == Name.HasMore)
                    {
                        hasMore = true;
                    }

                    break;
                case JsonTokenType.StartObject:
                    if (inPage && d == o + 2 && names[o + 1] == Name.Changes)
                    {
                        (seq, stamp, matches) = (-1, 0, false);
                    }

                    break;
                case JsonTokenType.EndObject:
                    if (inPage && d == o + 2 && names[o + 1] == Name.Changes && matches && seq >= 0)
                    {
                        found.Add((seq, stamp));
                    }

                    break;
            }
        }

        return new Parsed(kind, cursor, hasMore);
    }

    private static Name Classify(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("type"u8) ? Name.Type
        : reader.ValueTextEquals("page"u8) ? Name.Page
        : reader.ValueTextEquals("cursor"u8) ? Name.Cursor
        : reader.ValueTextEquals("hasMore"u8) ? Name.HasMore
        : reader.ValueTextEquals("changes"u8) ? Name.Changes
        : reader.ValueTextEquals("collection"u8) ? Name.Collection
        : reader.ValueTextEquals("state"u8) ? Name.State
        : reader.ValueTextEquals("f"u8) ? Name.Fields
        : reader.ValueTextEquals("seq"u8) ? Name.Seq
        : reader.ValueTextEquals("t"u8) ? Name.Stamp
        : reader.ValueTextEquals("v"u8) ? Name.Value
        : Name.Other;
}

/// <summary>What the live benchmarks share: the machine, process memory, quantiles.</summary>
internal static class LiveBenchShared
{
    public static JsonObject Machine()
    {
        var cpu = "";
        long memoryKb = 0;
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "";
            memoryKb = StatusKb("/proc/meminfo", "MemTotal:");
        }
        catch (IOException)
        {
        }

        return new JsonObject
        {
            ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            ["cpu"] = cpu,
            ["cpus"] = Environment.ProcessorCount,
            ["memory_gb"] = Math.Round(memoryKb / 1024.0 / 1024.0, 1),
            ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
            ["load_average"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "",
            ["at"] = TimeProvider.System.GetUtcNow().ToString("u", CultureInfo.InvariantCulture),
        };
    }

    /// <summary>A process's resident memory now (VmRSS), in MB; NaN once it is gone.</summary>
    public static double RssMb(int pid) => Mb(pid, "VmRSS:");

    /// <summary>A process's peak resident memory (VmHWM), in MB; NaN once it is gone.</summary>
    public static double PeakRssMb(int pid) => Mb(pid, "VmHWM:");

    private static double Mb(int pid, string field)
    {
        try
        {
            return StatusKb($"/proc/{pid}/status", field) / 1024.0;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    private static long StatusKb(string file, string field)
    {
        foreach (var line in File.ReadLines(file))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new IOException($"{field} not found in {file}.");
    }

    /// <summary>The CPU time a process has used so far (user and system), in seconds; NaN once it is gone.</summary>
    public static double CpuSeconds(int pid)
    {
        try
        {
            // Fields 14 and 15 of /proc/PID/stat, counted after the command name (which may hold spaces) ends with ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>The nearest-rank quantile of sorted values.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];

    public static double Ms(long fromTicks, long toTicks) => (toTicks - fromTicks) * 1_000.0 / Stopwatch.Frequency;

    public static long Long(string text) => long.Parse(text, CultureInfo.InvariantCulture);
}
