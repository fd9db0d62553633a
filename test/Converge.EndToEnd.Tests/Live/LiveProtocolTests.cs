using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Converge.EndToEnd.Tests.Live;

/// <summary>The live channel's messages as another language's client would see them, over a raw WebSocket.</summary>
public sealed class LiveProtocolTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_push_over_the_socket_is_answered_and_its_commit_comes_back_as_changes_after_the_cursor()
    {
        await using var server = await SyncServer.StartAsync();
        using var socket = await ConnectAsync(server, SyncServer.AllScopesKey, "s1");
        var ready = await ReceiveAsync(socket);
        Assert.Equal("ready", ready["type"]!.GetValue<string>());
        Assert.Equal("s1", ready["scopes"]![0]!.GetValue<string>());

        await SendAsync(socket, """{"type":"push","request":7,"push":{"client":"00000000000000a1","clock":"000000000001-0000-00000000000000a1","mutations":[{"id":1,"scope":"s1","collection":"todos","doc":"t1","op":"put","hlc":"000000000001-0000-00000000000000a1","fields":{"title":"hi"}}]}}""");

        var changes = await ReceiveAsync(socket);
        Assert.Equal("changes", changes["type"]!.GetValue<string>());
        Assert.Equal(0, changes["after"]!.GetValue<long>());
        Assert.Equal("s1", changes["page"]!["scope"]!.GetValue<string>());
        Assert.Equal("t1", changes["page"]!["changes"]![0]!["id"]!.GetValue<string>());
        var pushed = await ReceiveAsync(socket);
        Assert.Equal("pushed", pushed["type"]!.GetValue<string>());
        Assert.Equal(7, pushed["request"]!.GetValue<long>());
        Assert.Equal("applied", pushed["response"]!["results"]![0]!["status"]!.GetValue<string>());
        Assert.Equal(changes["page"]!["cursor"]!.GetValue<long>(), pushed["response"]!["results"]![0]!["rev"]!.GetValue<long>());
    }

    [Fact]
    public async Task Bad_messages_are_answered_with_an_error_change_nothing_and_leave_the_channel_open()
    {
        await using var server = await SyncServer.StartAsync();
        using var socket = await ConnectAsync(server, SyncServer.ScopeAKey, "a");
        await ReceiveAsync(socket);

        await SendAsync(socket, "not json");
        var malformed = await ReceiveAsync(socket);
        Assert.Equal(("error", "malformed", 400), (malformed["type"]!.GetValue<string>(), malformed["code"]!.GetValue<string>(), malformed["status"]!.GetValue<int>()));

        await SendAsync(socket, """{"type":"pull","request":1}""");
        Assert.Equal("invalid_message", (await ReceiveAsync(socket))["code"]!.GetValue<string>());

        await SendAsync(socket, """{"type":"push","request":2,"push":{"client":"00000000000000a1","clock":"000000000001-0000-00000000000000a1","mutations":[{"id":1,"scope":"b","collection":"todos","doc":"t1","op":"put","hlc":"000000000001-0000-00000000000000a1","fields":{"x":1}}]}}""");
        var forbidden = await ReceiveAsync(socket);
        Assert.Equal((2L, "scope_forbidden", 403, "b"), (forbidden["request"]!.GetValue<long>(), forbidden["code"]!.GetValue<string>(), forbidden["status"]!.GetValue<int>(), forbidden["scope"]!.GetValue<string>()));

        var deep = string.Concat(Enumerable.Repeat("[", 100)) + string.Concat(Enumerable.Repeat("]", 100));
        await SendAsync(socket, """{"type":"push","request":3,"push":{"client":"00000000000000a1","clock":"000000000001-0000-00000000000000a1","mutations":[{"id":1,"scope":"a","collection":"todos","doc":"t1","op":"put","hlc":"000000000001-0000-00000000000000a1","fields":{"x":""" + deep + "}}]}}");
        Assert.Equal("too_deep", (await ReceiveAsync(socket))["code"]!.GetValue<string>());

        // Still open, and nothing was written anywhere.
        Assert.Equal(WebSocketState.Open, socket.State);
        var reader = await server.OpenClientAsync("reader", scope: "a", key: SyncServer.ScopeAKey);
        var report = await reader.SyncAsync();
        Assert.Equal(0, report.Pulled);
    }

    [Fact]
    public async Task A_message_over_the_size_bound_closes_the_channel_with_message_too_big()
    {
        await using var server = await SyncServer.StartAsync(o => o.MaxRequestBytes = 4096);
        using var socket = await ConnectAsync(server, SyncServer.ScopeAKey, "a");
        await ReceiveAsync(socket);

        await SendAsync(socket, "{\"type\":\"push\",\"pad\":\"" + new string('x', 10_000) + "\"}");

        using var timeout = new CancellationTokenSource(Patience);
        var result = await socket.ReceiveAsync(new byte[1024], timeout.Token);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, socket.CloseStatus);
    }

    private static async Task<ClientWebSocket> ConnectAsync(SyncServer server, string key, string scope)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + key);
        await socket.ConnectAsync(new Uri($"ws://{server.Address.Authority}/converge/v1/live?scope={scope}"), CancellationToken.None);
        return socket;
    }

    private static Task SendAsync(WebSocket socket, string text) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    private static async Task<JsonNode> ReceiveAsync(WebSocket socket)
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
        Assert.Equal(WebSocketMessageType.Text, result.MessageType);
        return JsonNode.Parse(buffer.AsSpan(0, length))!;
    }
}
