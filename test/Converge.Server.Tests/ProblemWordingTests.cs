using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>A refusal says what was wrong in the protocol's words: never a .NET type name, nor the parser's own text.</summary>
public class ProblemWordingTests
{
    private const string Mutation = """{"id":1,"scope":"user:alice","collection":"c","doc":"d","op":"put","hlc":"000000000001-0000-0000000000000001","fields":{"a":1}}""";

    /// <summary>Push bodies, each with one thing wrong, and a word the refusal must use.</summary>
    public static readonly TheoryData<string, string> PushBodies = new()
    {
        { Push(Mutation.Replace("\"op\":\"put\"", "\"op\":\"explode\"", StringComparison.Ordinal)), "'op' must be one of put, patch, delete, increment, resolve" },
        { Push(Mutation.Replace("\"op\":\"put\"", "\"op\":1", StringComparison.Ordinal)), "'op'" },
        { Push(Mutation.Replace("\"id\":1", "\"id\":\"1\"", StringComparison.Ordinal)), "'id'" },
        { Push(Mutation.Replace("\"id\":1", "\"id\":1.5", StringComparison.Ordinal)), "'id'" },
        { Push(Mutation.Replace("\"fields\":{\"a\":1}", "\"fields\":[1]", StringComparison.Ordinal)), "'fields'" },
        { Push(Mutation.Replace("\"fields\":{\"a\":1}", "\"remove\":\"a\"", StringComparison.Ordinal)), "'remove'" },
        { Push(Mutation.Replace("\"fields\":{\"a\":1}", "\"remove\":[1]", StringComparison.Ordinal)), "'remove'" },
        { Push(Mutation.Replace(",\"hlc\":\"000000000001-0000-0000000000000001\"", "", StringComparison.Ordinal)), "'hlc'" },
        { Push(Mutation.Replace("\"000000000001-0000-0000000000000001\"", "12", StringComparison.Ordinal)), "'hlc'" },
        { """{"client":5,"clock":"000000000001-0000-0000000000000001","mutations":[]}""", "'client'" },
        { """{"client":"0000000000000001","clock":"000000000001-0000-0000000000000001","mutations":{}}""", "'mutations'" },
        { """{"client":"0000000000000001","clock":"000000000001-0000-0000000000000001","mutations":[7]}""", "'mutations'" },
        { "[]", "object" },
        { "{", "JSON" },
        { "{\"client\":", "JSON" },
        { "\"text\"", "object" },
    };

    /// <summary>Resolve bodies, each with one thing wrong, and a word the refusal must use.</summary>
    public static readonly TheoryData<string, string> ResolveBodies = new()
    {
        { """{"choice":1}""", "'choice' must be a string" },
        { """{"choice":["edited"]}""", "'choice' must be a string" },
        { """{}""", "'choice'" },
        { """{"fields":{"title":"x"}}""", "'choice'" },
        { """{"choice":"edited","fields":[1]}""", "'fields' must be an object" },
        { """{"choice":"edited","fields":"title"}""", "'fields' must be an object" },
        { """{"choice":"edited","fields":{"title":"x"},}""", "JSON" },
        { "[]", "object" },
        { "null", "null" },
        { "7", "object" },
    };

    /// <summary>Names that give away the server's implementation rather than the protocol.</summary>
    private static readonly string[] Forbidden =
    [
        "Converge.", "System.", "Path:", "LineNumber", "BytePosition", "MutationKind", "PushRequest", "ResolveConflictRequest",
        "JsonElement", "Dictionary", "IReadOnly", "Int64", "Int32", "String", "Boolean", "Nullable", "deserializ",
    ];

    private static string Push(string mutation) =>
        "{\"client\":\"0000000000000001\",\"clock\":\"000000000001-0000-0000000000000001\",\"mutations\":[" + mutation + "]}";

    internal static void AssertProtocolWords(string detail, string expected)
    {
        Assert.False(string.IsNullOrWhiteSpace(detail));
        foreach (var word in Forbidden)
        {
            Assert.False(detail.Contains(word, StringComparison.Ordinal), $"The detail names '{word}': {detail}");
        }

        Assert.Contains(expected, detail, StringComparison.Ordinal);
    }

    private static string Detail(string body)
    {
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("detail").GetString()!;
    }

    [Theory]
    [MemberData(nameof(PushBodies))]
    public async Task A_malformed_push_is_refused_in_the_protocols_words(string body, string expected)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);

        using var response = await server.Alice.PostAsync("v1/push", Api.Raw(body));

        AssertProtocolWords(Detail(await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed)), expected);
        Assert.Empty((await server.Alice.PullAsync("user:alice")).Changes);
    }

    [Theory]
    [MemberData(nameof(ResolveBodies))]
    public async Task A_malformed_resolve_is_refused_in_the_protocols_words_and_leaves_the_conflict_open(string body, string expected)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var (id, scope) = await InvalidTextTests.ConflictAsync(server, time);
        var before = await server.Alice.SnapshotAsync(scope);

        using var response = await server.Alice.PostAsync($"v1/conflicts/{id}/resolve", Api.Raw(body));

        AssertProtocolWords(Detail(await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed)), expected);
        Assert.Equal(before, await server.Alice.SnapshotAsync(scope));
        Assert.Equal(ConflictStatus.Open, Assert.Single(await server.Alice.ConflictsAsync(scope)).Status);
    }

    [Fact]
    public async Task A_well_formed_resolve_still_reads_its_choice_and_fields_as_before()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var (id, scope) = await InvalidTextTests.ConflictAsync(server, time);

        // Unknown members are ignored, and the last of a repeated member is kept, as the typed reader did.
        using var response = await server.Alice.PostAsync(
            $"v1/conflicts/{id}/resolve",
            Api.Raw("""{"note":{"x":[1]},"choice":"server","choice":"edited","fields":{"title":"first"},"fields":{"title":{"both":["A","B"]}}}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var state = (await server.Alice.PullAllAsync(scope)).SelectMany(p => p.Changes).Last().State;
        Assert.Equal("""{"both":["A","B"]}""", state.Fields["title"].Value.GetRawText());
    }

    [Fact]
    public async Task Malformed_live_messages_are_answered_in_the_protocols_words()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        using var socket = await LiveSocket.ConnectAsync(server, TestServer.AliceKey, "user:alice");
        string[] messages =
        [
            "not json",
            """{"type":1}""",
            """{"type":"push","request":"one"}""",
            "[]",
            """{"type":"push","request":1,"push":""" + Push(Mutation.Replace("\"op\":\"put\"", "\"op\":\"explode\"", StringComparison.Ordinal)) + "}",
            """{"type":"push","request":2,"push":{"client":"0000000000000001","clock":7,"mutations":[]}}""",
            """{"type":"push","request":3,"push":[]}""",
        ];
        string[] expected = ["JSON", "'type'", "'request'", "object", "'op' must be one of", "'clock'", "object"];

        for (var i = 0; i < messages.Length; i++)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(messages[i]));
            var error = await socket.ReceiveAsync();
            Assert.Equal(("error", "malformed"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
            AssertProtocolWords(error["detail"]!.GetValue<string>(), expected[i]);
        }

        Assert.Equal(WebSocketState.Open, socket.Socket.State);
    }
}
