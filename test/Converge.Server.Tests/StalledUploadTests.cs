using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Server.Tests;

/// <summary>
/// A hostile tenant that starts uploads and stalls them must not pin the server's memory: its bodies are held to its
/// budget of bytes in flight, and released when they do not arrive in time, while other tenants are served.
/// </summary>
public sealed class StalledUploadTests
{
    private const long MiB = 1024 * 1024;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Stalled_http_pushes_are_held_to_the_principal_budget_and_answered_408_at_the_body_timeout()
    {
        var time = Times.NewFake();
        await using var server = await StartAsync(time);
        var options = server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ConvergeServerOptions>>().Value;
        using var inFlight = new InFlightGauge(server);
        const long Declared = 8 * MiB - 1;

        // 40 pushes of just under MaxRequestBytes, headers only for now.
        var uploads = new List<RawUpload>();
        try
        {
            for (var i = 0; i < 40; i++)
            {
                uploads.Add(await RawUpload.StartAsync(server.Address, TestServer.AliceKey, Declared));
            }

            // The first 32 open requests fit the request limit, and four bodies of 8 MiB fill the principal's 32 MiB:
            // every other upload is refused at once, before a byte of its body is read.
            var refused = await FirstAnsweredAsync(uploads, 36);
            foreach (var upload in refused)
            {
                var response = await upload.Response;
                Assert.True(response.Status == 429, $"Expected 429, got {response.Status}: {response.Body}");
                Assert.Equal("1", response.Header("Retry-After"));
                Assert.Equal("too_many_requests", JsonDocument.Parse(response.Body).RootElement.GetProperty("code").GetString());
            }

            var held = uploads.Except(refused).ToList();
            Assert.Equal(4, held.Count);
            Assert.All(held, upload => Assert.False(upload.Response.IsCompleted));

            // The held ones send all but the last KiB fast, then stall: Kestrel's average data rate stays high.
            foreach (var upload in held)
            {
                await upload.SendBodyAsync(Declared - 1024);
            }

            Assert.Equal(4 * Declared, inFlight.Read());
            Assert.True(inFlight.Read() <= options.MaxBytesInFlightPerPrincipal);

            // Another principal is served as usual meanwhile.
            var bob = new Device(time);
            var pushed = await server.Bob.PushAsync(bob.Batch(bob.Put("user:bob", "notes", "n1", 0, """{"title":"still served"}""")));
            Assert.Equal(MutationStatus.Applied, pushed.Results[0].Status);
            Assert.Equal(4 * Declared, inFlight.Read());

            // The body timeout passes: every stalled push gets 408, and its buffer was given back before the answer.
            time.Advance(options.RequestBodyTimeout);
            foreach (var upload in held)
            {
                var response = await upload.Response.WaitAsync(Patience);
                Assert.True(response.Status == 408, $"Expected 408, got {response.Status}: {response.Body}");
                Assert.Equal("request_timeout", JsonDocument.Parse(response.Body).RootElement.GetProperty("code").GetString());
            }

            Assert.Equal(0, inFlight.Read());
            Assert.True(inFlight.Max <= options.MaxBytesInFlightPerPrincipal, $"{inFlight.Max} bytes were in flight at once.");
        }
        finally
        {
            foreach (var upload in uploads)
            {
                upload.Dispose();
            }
        }
    }

    [Fact]
    public async Task Stalled_live_messages_are_held_to_the_principal_budget_and_closed_at_the_body_timeout()
    {
        var time = Times.NewFake();
        await using var server = await StartAsync(time);
        var options = server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ConvergeServerOptions>>().Value;
        using var inFlight = new InFlightGauge(server);

        // 20 sockets: the principal's 8 live connections open, the others are refused before the upgrade.
        var connecting = Enumerable.Range(0, 20).Select(_ => LiveClient.TryConnectAsync(server.Address, TestServer.AliceKey, "user:alice")).ToList();
        var attempts = await Task.WhenAll(connecting).WaitAsync(Patience);
        var open = attempts.Where(a => a.Client is not null).Select(a => a.Client!).ToList();
        try
        {
            var refusedUpgrades = attempts.Where(a => a.Client is null).ToList();
            Assert.True(refusedUpgrades.Count == 12, $"Expected 12 upgrades refused, got {refusedUpgrades.Count}: {string.Join(", ", refusedUpgrades.Select(a => a.Status))}");
            Assert.All(refusedUpgrades, a => Assert.Equal(HttpStatusCode.TooManyRequests, a.Status));
            Assert.All(refusedUpgrades, a => Assert.Equal("1", a.RetryAfter));
            Assert.Equal(8, open.Count);

            // Each open socket starts a 5 MiB push and stalls before its end. A message's buffer grows to 8 MiB, so
            // four fill the principal's 32 MiB; the server sends nothing while it holds one, so its measure is read.
            for (var i = 0; i < 4; i++)
            {
                await open[i].SendPartialPushAsync(request: i + 1, 5 * MiB);
                await inFlight.UntilAsync((i + 1) * 8 * MiB);
            }

            // The next four are answered at once with an error for their request; the rest of each is dropped.
            for (var i = 4; i < 8; i++)
            {
                await open[i].SendPartialPushAsync(request: i + 1, 5 * MiB);
                var error = await open[i].NextAsync();
                Assert.Equal("error", error["type"]!.GetValue<string>());
                Assert.Equal((long)i + 1, error["request"]!.GetValue<long>());
                Assert.Equal(429, error["status"]!.GetValue<int>());
                Assert.Equal("too_many_requests", error["code"]!.GetValue<string>());
            }

            Assert.Equal(32 * MiB, inFlight.Read());
            Assert.True(inFlight.Read() <= options.MaxBytesInFlightPerPrincipal);

            // Another principal pushes over HTTP and over its own socket as usual meanwhile.
            var bob = new Device(time);
            await server.Bob.PushAsync(bob.Batch(bob.Put("user:bob", "notes", "n1", 0, """{"title":"still served"}""")));
            var bobLive = await LiveClient.TryConnectAsync(server.Address, TestServer.BobKey, "user:bob");
            using var bobSocket = bobLive.Client ?? throw new InvalidOperationException($"Bob's socket was refused: {bobLive.Status}");
            await bobSocket.SendPushAsync(request: 1, "user:bob");
            JsonNode answer;
            do
            {
                answer = await bobSocket.NextAsync();
            }
            while (answer["type"]!.GetValue<string>() == "changes");
            Assert.Equal("pushed", answer["type"]!.GetValue<string>());

            // The timeout passes: every stalled message's socket is closed with the reason, its buffer given back first.
            time.Advance(options.RequestBodyTimeout);
            foreach (var client in open)
            {
                var (status, reason) = await client.ClosedAsync();
                Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
                Assert.Contains("did not arrive whole", reason, StringComparison.Ordinal);
            }

            Assert.Equal(0, inFlight.Read());
            Assert.True(inFlight.Max <= options.MaxBytesInFlightPerPrincipal, $"{inFlight.Max} bytes were in flight at once.");
            Assert.Equal(WebSocketState.Open, bobSocket.State);
        }
        finally
        {
            foreach (var client in open)
            {
                client.Dispose();
            }
        }
    }

    private static Task<TestServer> StartAsync(FakeTimeProvider time) =>
        TestServer.StartAsync(
            time,
            build: b => b.WebHost.ConfigureKestrel(k =>
            {
                // Only the server's own body timeout may end the stalled bodies here, on the test's clock.
                k.Limits.MinRequestBodyDataRate = null;
                k.Limits.MaxConcurrentConnections = null;
            }));

    /// <summary>Waits for the first <paramref name="count"/> uploads to be answered, in the order they were.</summary>
    private static async Task<List<RawUpload>> FirstAnsweredAsync(List<RawUpload> uploads, int count)
    {
        using var patience = new CancellationTokenSource(Patience);
        var pending = uploads.ToDictionary(u => (Task)u.Response, u => u);
        var answered = new List<RawUpload>();
        while (answered.Count < count)
        {
            Task done;
            try
            {
                done = await Task.WhenAny(pending.Keys).WaitAsync(patience.Token);
            }
            catch (OperationCanceledException)
            {
                throw new Xunit.Sdk.XunitException($"Only {answered.Count} of the uploads were answered within {Patience}; {count} were expected to be refused at once.");
            }

            answered.Add(pending[done]);
            pending.Remove(done);
        }

        return answered;
    }

    /// <summary>Reads <c>converge.server.request_bytes_in_flight</c> of one server, and the most it ever read.</summary>
    private sealed class InFlightGauge : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _last = -1;

        public InFlightGauge(TestServer server)
        {
            var factory = server.Services.GetRequiredService<IMeterFactory>();
            _listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Converge.Server" && ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name == "converge.server.request_bytes_in_flight")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) =>
            {
                _last = value;
                Max = Math.Max(Max, value);
            });
            _listener.Start();
        }

        public long Max { get; private set; }

        public long Read()
        {
            _last = -1;
            _listener.RecordObservableInstruments();
            Assert.True(_last >= 0, "The server publishes no converge.server.request_bytes_in_flight gauge.");
            return _last;
        }

        /// <summary>Reads the gauge until it shows a value: for state the server reaches without sending anything.</summary>
        public async Task UntilAsync(long expected)
        {
            using var patience = new CancellationTokenSource(Patience);
            while (Read() != expected)
            {
                Assert.False(patience.IsCancellationRequested, $"The server held {_last} bytes in flight, not {expected}, within {Patience}.");
                await Task.Delay(5);
            }
        }

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>An HTTP/1.1 push over a raw TCP connection, written by hand so its body can stall.</summary>
    private sealed class RawUpload : IDisposable
    {
        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;

        private RawUpload(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
            Response = ReadResponseAsync();
        }

        /// <summary>Gets the server's answer, read to the end of the connection.</summary>
        public Task<RawResponse> Response { get; }

        public static async Task<RawUpload> StartAsync(Uri address, string key, long contentLength)
        {
            var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, address.Port);
            var head = $"POST {address.AbsolutePath}v1/push HTTP/1.1\r\nHost: 127.0.0.1:{address.Port}\r\nAuthorization: Bearer {key}\r\n"
                + $"Content-Type: application/json\r\nContent-Length: {contentLength}\r\n\r\n";
            await tcp.GetStream().WriteAsync(Encoding.ASCII.GetBytes(head));
            return new RawUpload(tcp);
        }

        public async Task SendBodyAsync(long bytes)
        {
            var chunk = new byte[64 * 1024];
            chunk.AsSpan().Fill((byte)' ');
            for (long sent = 0; sent < bytes; sent += chunk.Length)
            {
                await _stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, bytes - sent)));
            }
        }

        public void Dispose() => _tcp.Dispose();

        private async Task<RawResponse> ReadResponseAsync()
        {
            await Task.Yield();
            var received = new MemoryStream();
            var buffer = new byte[16 * 1024];
            try
            {
                int read;
                while ((read = await _stream.ReadAsync(buffer)) > 0)
                {
                    received.Write(buffer, 0, read);
                }
            }
            catch (IOException) when (received.Length > 0)
            {
                // Reset after the answer: what was read is the answer.
            }

            return RawResponse.Parse(Encoding.UTF8.GetString(received.ToArray()));
        }
    }

    private sealed record RawResponse(int Status, IReadOnlyList<(string Name, string Value)> Headers, string Body)
    {
        public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

        public static RawResponse Parse(string text)
        {
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            Assert.True(end > 0, $"Not an HTTP response: '{text}'");
            var lines = text[..end].Split("\r\n");
            var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            var headers = lines.Skip(1).Select(l => (l[..l.IndexOf(':', StringComparison.Ordinal)].Trim(), l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())).ToList();
            var body = text[(end + 4)..];
            if (headers.Any(h => h.Item1.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)))
            {
                body = Unchunk(body);
            }

            return new RawResponse(status, headers, body);
        }

        private static string Unchunk(string chunked)
        {
            var body = new StringBuilder();
            var at = 0;
            while (true)
            {
                var lineEnd = chunked.IndexOf("\r\n", at, StringComparison.Ordinal);
                var size = Convert.ToInt32(chunked[at..lineEnd], 16);
                if (size == 0)
                {
                    return body.ToString();
                }

                body.Append(chunked, lineEnd + 2, size);
                at = lineEnd + 2 + size + 2;
            }
        }
    }

    /// <summary>A raw live socket, its messages read in the background so pings are answered and nothing is missed.</summary>
    private sealed class LiveClient : IDisposable
    {
        private readonly ClientWebSocket _socket;
        private readonly Channel<JsonNode> _messages = Channel.CreateUnbounded<JsonNode>();
        private readonly Task _receiving;

        private LiveClient(ClientWebSocket socket)
        {
            _socket = socket;
            _receiving = ReceiveAllAsync();
        }

        public WebSocketState State => _socket.State;

        public static async Task<(LiveClient? Client, HttpStatusCode Status, string? RetryAfter)> TryConnectAsync(Uri address, string key, string scope)
        {
            var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.SetRequestHeader("Authorization", "Bearer " + key);
            try
            {
                await socket.ConnectAsync(new Uri($"ws://{address.Authority}{address.AbsolutePath}v1/live?scope={Uri.EscapeDataString(scope)}"), CancellationToken.None);
            }
            catch (WebSocketException)
            {
                var retryAfter = socket.HttpResponseHeaders?.TryGetValue("Retry-After", out var values) == true ? values.FirstOrDefault() : null;
                var status = socket.HttpStatusCode;
                socket.Dispose();
                return (null, status, retryAfter);
            }

            var client = new LiveClient(socket);
            var ready = await client.NextAsync();
            Assert.Equal("ready", ready["type"]!.GetValue<string>());
            return (client, HttpStatusCode.SwitchingProtocols, null);
        }

        /// <summary>Sends the start of a push of about <paramref name="bytes"/>, with its request number first, and not its end.</summary>
        public async Task SendPartialPushAsync(long request, long bytes)
        {
            var head = Encoding.UTF8.GetBytes($$"""{"type":"push","request":{{request}},"push":{"client":"00000000000000a1","clock":"000000000001-0000-00000000000000a1","mutations":[{"id":1,"scope":"user:alice","collection":"notes","doc":"big","op":"put","hlc":"000000000001-0000-00000000000000a1","fields":{"pad":" """);
            await _socket.SendAsync(head, WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
            var pad = new byte[64 * 1024];
            pad.AsSpan().Fill((byte)'x');
            for (long sent = head.Length; sent < bytes; sent += pad.Length)
            {
                await _socket.SendAsync(pad, WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
            }
        }

        public Task SendPushAsync(long request, string scope) => _socket.SendAsync(
            Encoding.UTF8.GetBytes("""{"type":"push","request":""" + request + ""","push":{"client":"00000000000000b1","clock":"000000000001-0000-00000000000000b1","mutations":[{"id":1,"scope":""" + JsonSerializer.Serialize(scope) + ""","collection":"notes","doc":"small","op":"put","hlc":"000000000001-0000-00000000000000b1","fields":{"title":"hi"}}]}}"""),
            WebSocketMessageType.Text,
            endOfMessage: true,
            CancellationToken.None);

        public async Task<JsonNode> NextAsync()
        {
            using var patience = new CancellationTokenSource(Patience);
            try
            {
                return await _messages.Reader.ReadAsync(patience.Token);
            }
            catch (ChannelClosedException)
            {
                throw new Xunit.Sdk.XunitException($"The socket closed ({_socket.CloseStatus}: {_socket.CloseStatusDescription}) instead of sending a message.");
            }
        }

        /// <summary>Waits for the server's close.</summary>
        public async Task<(WebSocketCloseStatus? Status, string Reason)> ClosedAsync()
        {
            await _receiving.WaitAsync(Patience);
            return (_socket.CloseStatus, _socket.CloseStatusDescription ?? "");
        }

        public void Dispose() => _socket.Dispose();

        private async Task ReceiveAllAsync()
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var length = 0;
                    ValueWebSocketReceiveResult result;
                    do
                    {
                        result = await _socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                        length += result.Count;
                    }
                    while (!result.EndOfMessage);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    _messages.Writer.TryWrite(JsonNode.Parse(buffer.AsSpan(0, length))!);
                }
            }
            catch (WebSocketException)
            {
            }
            finally
            {
                _messages.Writer.TryComplete();
            }
        }
    }
}
