using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>Bad text over the live channel is answered with an <c>error</c> message; the connection stays open and nothing changes.</summary>
public class LiveInputTests
{
    private const string Scope = "user:alice";

    public static TheoryData<string, string> PushCases() => InvalidTextTests.PushCases();

    [Theory]
    [MemberData(nameof(PushCases))]
    public async Task A_live_push_with_text_that_is_not_unicode_gets_a_malformed_error_and_the_connection_stays_open(string template, string bad)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "existing", 0, """{"title":"kept"}""")));
        var before = await server.Alice.SnapshotAsync(Scope);
        using var socket = await LiveSocket.ConnectAsync(server, TestServer.AliceKey, Scope);

        // Raw bytes go in a binary message (a text message of invalid UTF-8 is refused by the WebSocket itself).
        byte[] message = [.. """{"type":"push","request":5,"push":"""u8, .. InvalidTextTests.Body(template, bad, device), .. "}"u8];
        await socket.SendAsync(message, bad.StartsWith('\\') ? WebSocketMessageType.Text : WebSocketMessageType.Binary);

        var error = await socket.ReceiveAsync();
        Assert.Equal(("error", 5L, "malformed", 400), (error["type"]!.GetValue<string>(), error["request"]!.GetValue<long>(), error["code"]!.GetValue<string>(), error["status"]!.GetValue<int>()));
        Assert.Contains("UTF-8", error["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));

        // Same connection: the client's next mutation id still applies.
        var next = device.Batch(device.Patch(Scope, "notes", "existing", 1, """{"title":"next"}""") with { Id = 2 });
        await socket.SendAsync([.. """{"type":"push","request":6,"push":"""u8, .. System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(next, ProtocolJson.PushRequest), .. "}"u8]);
        var pushed = await socket.ReceiveUntilAsync("pushed");
        Assert.Equal(6, pushed["request"]!.GetValue<long>());
        Assert.Equal("applied", pushed["response"]!["results"]![0]!["status"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"type":"push§","request":1,"push":{}}""")]
    [InlineData("""{"type":"push","request":1,"push":{},"x§":1}""")]
    [InlineData("""{"type":"push","request":1,"push":{"x":"§"}}""")]
    public async Task A_live_envelope_with_text_that_is_not_unicode_gets_a_malformed_error(string template)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        using var socket = await LiveSocket.ConnectAsync(server, TestServer.AliceKey, Scope);

        foreach (var bad in new[] { "ff", @"\ud800" })
        {
            await socket.SendAsync(InvalidTextTests.Body(template, bad, new Device(time)), bad == "ff" ? WebSocketMessageType.Binary : WebSocketMessageType.Text);
            var error = await socket.ReceiveAsync();
            Assert.Equal(("error", "malformed"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
            Assert.Contains("UTF-8", error["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        Assert.Equal(WebSocketState.Open, socket.Socket.State);
        Assert.Empty((await server.Alice.PullAsync(Scope)).Changes);
    }
}

/// <summary>A raw live connection, as another language's client would open it.</summary>
internal sealed class LiveSocket : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private LiveSocket(ClientWebSocket socket) => Socket = socket;

    public ClientWebSocket Socket { get; }

    /// <summary>Connects and reads the <c>ready</c> message.</summary>
    public static async Task<LiveSocket> ConnectAsync(TestServer server, string key, params string[] scopes)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + key);
        var query = string.Join("&", scopes.Select(s => "scope=" + Uri.EscapeDataString(s)));
        await socket.ConnectAsync(new Uri(new Uri(server.Address.ToString().Replace("http://", "ws://", StringComparison.Ordinal)), "v1/live?" + query), CancellationToken.None);
        var live = new LiveSocket(socket);
        Assert.Equal("ready", (await live.ReceiveAsync())["type"]!.GetValue<string>());
        return live;
    }

    /// <summary>Tries to connect and returns the refusal's status, or 101 when the upgrade was accepted.</summary>
    public static async Task<HttpStatusCode> TryConnectAsync(TestServer server, string key, string rawQuery)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + key);
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(new Uri(new Uri(server.Address.ToString().Replace("http://", "ws://", StringComparison.Ordinal)), "v1/live?" + rawQuery), CancellationToken.None);
            return HttpStatusCode.SwitchingProtocols;
        }
        catch (WebSocketException)
        {
            return socket.HttpStatusCode;
        }
    }

    public Task SendAsync(byte[] message, WebSocketMessageType type = WebSocketMessageType.Text) =>
        Socket.SendAsync(message, type, endOfMessage: true, CancellationToken.None);

    public async Task<JsonNode> ReceiveAsync()
    {
        var message = await ReceiveAsync(Socket);
        Assert.True(message is not null, $"Expected a text message, got a close ({Socket.CloseStatus} {Socket.CloseStatusDescription}).");
        return message;
    }

    /// <summary>Receives one whole message as JSON; <see langword="null"/> when the server closed the channel.</summary>
    public static async Task<JsonNode?> ReceiveAsync(WebSocket socket)
    {
        using var timeout = new CancellationTokenSource(Patience);
        var buffer = new byte[1 << 16];
        var length = 0;
        ValueWebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(length), timeout.Token);
            length += result.Count;
        }
        while (!result.EndOfMessage);
        return result.MessageType == WebSocketMessageType.Close ? null : JsonNode.Parse(buffer.AsSpan(0, length));
    }

    /// <summary>Receives until a message of the type comes (a push's own changes come back too, before or after its answer).</summary>
    public async Task<JsonNode> ReceiveUntilAsync(string type)
    {
        while (true)
        {
            var message = await ReceiveAsync();
            if (message["type"]!.GetValue<string>() == type)
            {
                return message;
            }
        }
    }

    public void Dispose() => Socket.Dispose();
}
