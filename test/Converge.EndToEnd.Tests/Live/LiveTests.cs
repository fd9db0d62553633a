using System.Diagnostics.Metrics;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Converge.Client;

namespace Converge.EndToEnd.Tests.Live;

/// <summary>The live channel end to end: real Kestrel, real WebSockets, real SQLite files.</summary>
public sealed class LiveTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static void FastReconnect(ConvergeClientOptions options)
    {
        options.LiveReconnectDelay = TimeSpan.FromMilliseconds(20);
        options.LiveMaxReconnectDelay = TimeSpan.FromMilliseconds(200);
    }

    [Fact]
    public async Task A_write_on_one_device_is_seen_on_another_without_any_sync_call()
    {
        await using var server = await SyncServer.StartAsync();
        var a = await server.OpenClientAsync("a");
        var b = await server.OpenClientAsync("b");
        a.Live.Start();
        b.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        var seen = new TaskCompletionSource<DocumentChangedEventArgs<Todo>>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Collection<Todo>("todos").Changed += (_, e) => seen.TrySetResult(e);
        await a.Collection<Todo>("todos").PutAsync("t1", new Todo { Title = "live" });

        var change = await seen.Task.WaitAsync(Patience);
        Assert.Equal(ChangeOrigin.Remote, change.Origin);
        Assert.Equal("t1", change.Id);
        Assert.Equal("live", (await b.Collection<Todo>("todos").GetAsync("t1"))!.Title);
        await Until(a, "todos", async () => await a.GetPendingCountAsync() == 0 && (await a.Collection<Todo>("todos").GetAsync("t1"))?.Title == "live");
    }

    [Fact]
    public async Task Clients_of_a_restarted_server_reconnect_and_converge_with_the_writes_made_while_it_was_down()
    {
        await using var server = await SyncServer.StartAsync();
        var a = await server.OpenClientAsync("a", configure: FastReconnect);
        var b = await server.OpenClientAsync("b", configure: FastReconnect);
        await a.Collection<Todo>("todos").PutAsync("before", new Todo { Title = "before" });
        a.Live.Start();
        b.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await Until(b, "todos", async () => await b.Collection<Todo>("todos").GetAsync("before") is not null);

        var aOffline = a.Live.WaitForStatusAsync(LiveStatus.Offline);
        var bOffline = b.Live.WaitForStatusAsync(LiveStatus.Offline);
        await server.RestartAsync(async () =>
        {
            await aOffline.WaitAsync(Patience);
            await bOffline.WaitAsync(Patience);

            // Local writes go on while the server is away.
            await a.Collection<Todo>("todos").PutAsync("from-a", new Todo { Title = "a" });
            await b.Collection<Todo>("todos").PutAsync("from-b", new Todo { Title = "b" });
            await b.Collection<Todo>("todos").PatchAsync("before", new { Note = "b was here" });
        });

        await Until(a, "todos", async () => await a.Collection<Todo>("todos").GetAsync("from-b") is not null && (await a.Collection<Todo>("todos").GetAsync("before"))?.Note == "b was here");
        await Until(b, "todos", async () => await b.Collection<Todo>("todos").GetAsync("from-a") is not null);
        // The changes may come with the catch-up pull, before the status says live: it says so once caught up.
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        Assert.Equal(await Dump(a), await Dump(b));
    }

    [Fact]
    public async Task Writes_on_both_sides_while_one_socket_is_down_converge_when_it_comes_back()
    {
        await using var server = await SyncServer.StartAsync();
        var a = await server.OpenClientAsync("a", configure: FastReconnect);
        var b = await server.OpenClientAsync("b", configure: FastReconnect);
        a.Live.Start();
        b.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        await a.Live.StopAsync();
        Assert.Equal(LiveStatus.Stopped, a.Live.Status);
        var counters = "counters";
        for (var i = 0; i < 5; i++)
        {
            await a.Collection<JsonObject>(counters).IncrementAsync("c", "n", 1);
            await b.Collection<JsonObject>(counters).IncrementAsync("c", "n", 10);
            await a.Collection<Todo>("todos").PutAsync($"a{i}", new Todo { Title = "a" });
        }

        // B is live: its writes reached the server at once; A's wait in its outbox.
        Assert.Equal(10, await a.GetPendingCountAsync());
        a.Live.Start();

        await Until(a, counters, async () => (await a.Collection<JsonObject>(counters).GetAsync("c"))?["n"]?.GetValue<long>() == 55 && await a.GetPendingCountAsync() == 0);
        await Until(b, counters, async () => (await b.Collection<JsonObject>(counters).GetAsync("c"))?["n"]?.GetValue<long>() == 55);
        await Until(b, "todos", async () => await b.Collection<Todo>("todos").Query().CountAsync() == 5);
    }

    [Fact]
    public async Task A_client_that_stops_reading_is_held_to_its_queue_bound_and_poked_instead()
    {
        const int budget = 64 * 1024;
        await using var server = await SyncServer.StartAsync(o =>
        {
            o.LiveSendQueueBytes = budget;
            o.LiveMaxMessageBytes = 32 * 1024;
        });
        long maxQueued = 0;
        long pokes = 0;
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Converge.Server" && instrument.Name is "converge.server.live_queued_bytes" or "converge.server.live_pokes")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "converge.server.live_pokes")
            {
                Interlocked.Add(ref pokes, value);
            }
            else
            {
                InterlockedMax(ref maxQueued, value);
            }
        });
        meters.Start();

        // A socket that connects and then reads nothing, with a small receive buffer so the network holds little.
        using var idle = await OpenRawSocketAsync(server, "s1", receiveBuffer: 4096);

        var writer = await server.OpenClientAsync("writer");
        var text = new string('x', 2_000);
        var written = 0L;
        for (var batch = 0; batch < 500; batch++)
        {
            await writer.WriteBatchAsync(w =>
            {
                for (var i = 0; i < 10; i++)
                {
                    w.Put(writer.Collection<Todo>("todos"), $"d{batch}-{i}", new Todo { Title = text });
                }
            });
            await writer.SyncAsync();
            written += 10 * text.Length;
            meters.RecordObservableInstruments();
        }

        // Megabytes went to a client that reads nothing, and the server held at most its bound for it.
        Assert.True(written > 30 * budget, $"the test wrote {written} bytes");
        Assert.InRange(maxQueued, 1, budget);
        Assert.True(Interlocked.Read(ref pokes) >= 1, "the lagging client's changes were replaced by a poke");

        // When it reads again, it finds the poke that tells it to pull.
        var buffer = new byte[1 << 20];
        using var timeout = new CancellationTokenSource(Patience);
        var sawPoke = false;
        while (!sawPoke)
        {
            var length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                result = await idle.ReceiveAsync(buffer.AsMemory(length), timeout.Token);
                length += result.Count;
            }
            while (!result.EndOfMessage);
            sawPoke = JsonNode.Parse(buffer.AsSpan(0, length))!["type"]!.GetValue<string>() == "poke";
        }
    }

    [Fact]
    public async Task Sockets_without_credentials_or_asking_for_a_foreign_scope_are_refused_before_they_open()
    {
        await using var server = await SyncServer.StartAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, await RefusalAsync(LiveUri(server, "a"), key: null));
        Assert.Equal(HttpStatusCode.Unauthorized, await RefusalAsync(LiveUri(server, "a"), key: "wrong"));
        Assert.Equal(HttpStatusCode.Forbidden, await RefusalAsync(LiveUri(server, "a", "b"), SyncServer.ScopeAKey));
        Assert.Equal(HttpStatusCode.BadRequest, await RefusalAsync(LiveUri(server), SyncServer.ScopeAKey));
        using (var http = new HttpClient())
        {
            http.DefaultRequestHeaders.Authorization = new("Bearer", SyncServer.ScopeAKey);
            Assert.Equal(HttpStatusCode.UpgradeRequired, (await http.GetAsync(new Uri(server.Address, "/converge/v1/live?scope=a"))).StatusCode);
        }

        // The client shows the refusal and keeps trying, without giving up local work.
        var alice = await server.OpenClientAsync("alice", scope: "b", key: SyncServer.ScopeAKey, configure: FastReconnect);
        alice.Live.Start();
        await alice.Live.WaitForStatusAsync(LiveStatus.Offline).WaitAsync(Patience);
        var error = Assert.IsType<ConvergeSyncException>(alice.Live.LastError);
        Assert.Equal(HttpStatusCode.Forbidden, error.StatusCode);
        await alice.Collection<Todo>("todos").PutAsync("t", new Todo { Title = "offline" });
        Assert.Equal(1, await alice.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_server_that_goes_silent_is_noticed_within_the_heartbeat_timeout()
    {
        await using var server = await SyncServer.StartAsync();
        await using var proxy = await FreezableProxy.StartAsync(server.Address);
        var a = await server.OpenClientAsync("a", configure: o =>
        {
            o.ServerUrl = proxy.Address;
            o.LiveHeartbeatTimeout = TimeSpan.FromMilliseconds(600);
            FastReconnect(o);
        });
        a.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        // The network stops carrying anything, without closing anything: only the heartbeat can tell.
        var offline = a.Live.WaitForStatusAsync(LiveStatus.Offline);
        proxy.Freeze();
        await offline.WaitAsync(Patience);

        Assert.NotNull(a.Live.LastError);
        proxy.Thaw();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
    }

    private static Uri LiveUri(SyncServer server, params string[] scopes) =>
        new($"ws://{server.Address.Authority}/converge/v1/live?{string.Join('&', scopes.Select(s => "scope=" + s))}");

    /// <summary>Opens a live socket by hand over a TCP socket whose receive buffer is fixed (the OS does not grow it).</summary>
    private static async Task<WebSocket> OpenRawSocketAsync(SyncServer server, string scope, int receiveBuffer)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = receiveBuffer };
        await socket.ConnectAsync(IPAddress.Loopback, server.Address.Port);
        var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        var key = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
        var request = $"GET /converge/v1/live?scope={scope} HTTP/1.1\r\nHost: 127.0.0.1:{server.Address.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {SyncServer.AllScopesKey}\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request));
        var head = new List<byte>();
        var one = new byte[1];
        while (head.Count < 4 || head[^4] != '\r' || head[^3] != '\n' || head[^2] != '\r' || head[^1] != '\n')
        {
            Assert.Equal(1, await stream.ReadAsync(one));
            head.Add(one[0]);
        }

        Assert.StartsWith("HTTP/1.1 101", System.Text.Encoding.ASCII.GetString([.. head]), StringComparison.Ordinal);
        return WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = Timeout.InfiniteTimeSpan });
    }

    private static async Task<HttpStatusCode> RefusalAsync(Uri uri, string? key)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (key is not null)
        {
            socket.Options.SetRequestHeader("Authorization", "Bearer " + key);
        }

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, CancellationToken.None));
        return socket.HttpStatusCode;
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long seen;
        while ((seen = Interlocked.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    /// <summary>Waits until a condition on a client holds, checking it again at each change of a collection (and at least every 100 ms, for changes that raise no event, such as an outbox that empties).</summary>
    private static async Task Until(ConvergeClient client, string collection, Func<Task<bool>> condition)
    {
        var changed = new SemaphoreSlim(0);
        EventHandler<DocumentChangedEventArgs<JsonObject>> handler = (_, _) => changed.Release();
        var watched = client.Collection<JsonObject>(collection);
        watched.Changed += handler;
        try
        {
            using var timeout = new CancellationTokenSource(Patience);
            while (!await condition())
            {
                try
                {
                    await changed.WaitAsync(TimeSpan.FromMilliseconds(100), timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"The condition on client {client.ClientId} did not hold within {Patience}.");
                }
            }
        }
        finally
        {
            watched.Changed -= handler;
        }
    }

    private static async Task<string> Dump(ConvergeClient client)
    {
        var items = await client.Collection<JsonObject>("todos").Query().ToListAsync();
        return string.Join('\n', items.Select(i => i.ToJsonString()).Order(StringComparer.Ordinal));
    }
}
