using System.Net;
using System.Text.Json;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>
/// Scope names keep to a safe set of characters, and names and ids hold no invisible, bidi or line-separator
/// characters, so one cannot be made to look like another; other Unicode stays allowed in names and ids.
/// </summary>
public class NameRulesTests
{
    /// <summary>Scopes that alice's <c>team:*</c> grant would allow, but that look like other scopes or hide characters.</summary>
    public static readonly TheoryData<string> LookalikeScopes = new()
    {
        "team:\u202E24", "team:4\u200B2", "team:42\u2028", "team:42\u2029", "team:\uFEFF42", "team:4\u00A02", "team:\u0430lice", "team:42 ", "team:\u061C42", "team:4\uFF12",
    };

    /// <summary>Characters refused in collection names, field names and document ids.</summary>
    public static readonly TheoryData<string> InvisibleCharacters = new()
    {
        "\u202E", "\u202A", "\u2066", "\u200B", "\u200F", "\u2028", "\u2029", "\uFEFF", "\u061C", "\u00AD", "\u0085",
    };

    private static async Task AssertRefusedAsync(TestServer server, HttpResponseMessage response)
    {
        var body = await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        Assert.Contains("ASCII letters, digits", body, StringComparison.Ordinal);
        Assert.DoesNotContain("scope_forbidden", body, StringComparison.Ordinal);
        Assert.Empty((await server.Alice.PullAsync("team:42")).Changes);
    }

    [Theory]
    [MemberData(nameof(LookalikeScopes))]
    public async Task A_push_to_a_lookalike_scope_is_refused_and_changes_nothing(string scope)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);

        using var response = await server.Alice.PostAsync("v1/push", Api.Json(device.Batch(device.Put("team:42", "notes", "ok", 0, """{"a":1}"""), device.Put(scope, "notes", "n", 0, """{"a":1}"""))));

        await AssertRefusedAsync(server, response);
        // The client's progress is untouched: its first mutation id still applies.
        Assert.Equal(MutationStatus.Applied, (await server.Alice.PushAsync(device.Batch(device.Put("team:42", "notes", "ok", 0, """{"a":1}""") with { Id = 1 }))).Results[0].Status);
    }

    [Theory]
    [MemberData(nameof(LookalikeScopes))]
    public async Task A_pull_conflict_list_or_live_connection_of_a_lookalike_scope_is_refused(string scope)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);

        using var pull = await server.Alice.GetAsync(Api.PullUri(scope));
        using var conflicts = await server.Alice.GetAsync($"v1/conflicts?scope={Uri.EscapeDataString(scope)}");
        var live = await LiveSocket.TryConnectAsync(server, TestServer.AliceKey, "scope=team%3A42&scope=" + Uri.EscapeDataString(scope));

        await AssertRefusedAsync(server, pull);
        await AssertRefusedAsync(server, conflicts);
        Assert.Equal(HttpStatusCode.BadRequest, live);
    }

    [Fact]
    public async Task Scopes_of_the_safe_characters_are_accepted_everywhere()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        const string scope = "team:Alice.Smith@example.com/x+y=z|w_v-u~0123456789";

        var push = await server.Alice.PushAsync(device.Batch(device.Put(scope, "notes", "n", 0, """{"a":1}""")));
        using var conflicts = await server.Alice.GetAsync($"v1/conflicts?scope={Uri.EscapeDataString(scope)}");
        using var live = await LiveSocket.ConnectAsync(server, TestServer.AliceKey, scope, "user:alice");

        Assert.Equal(MutationStatus.Applied, push.Results[0].Status);
        Assert.Single((await server.Alice.PullAsync(scope)).Changes);
        Assert.Equal(HttpStatusCode.OK, conflicts.StatusCode);
    }

    public static TheoryData<string, string> NameCases()
    {
        var cases = new TheoryData<string, string>();
        foreach (var c in InvisibleCharacters)
        {
            foreach (var place in new[] { "collection", "doc", "field", "remove", "baseValues" })
            {
                cases.Add(place, c);
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(NameCases))]
    public async Task A_name_or_id_with_an_invisible_bidi_or_separator_character_is_refused(string place, string c)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        var name = "ab" + c + "c";
        var mutation = device.Patch("team:42", "notes", "n", 0, """{"a":1}""");
        mutation = place switch
        {
            "collection" => mutation with { Collection = name },
            "doc" => mutation with { DocumentId = name },
            "field" => mutation with { Fields = Device.Fields($$"""{"{{name}}":1}""") },
            "remove" => mutation with { Remove = [name] },
            _ => mutation with { BaseValues = new Dictionary<string, JsonElement> { [name] = JsonSerializer.SerializeToElement(0) } },
        };

        using var response = await server.Alice.PostAsync("v1/push", Api.Json(device.Batch(mutation)));

        var body = await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        Assert.Contains("invisible", body, StringComparison.Ordinal);
        Assert.Empty((await server.Alice.PullAsync("team:42")).Changes);
        Assert.Equal(MutationStatus.Applied, (await server.Alice.PushAsync(device.Batch(device.Put("team:42", "notes", "n", 0, """{"a":1}""") with { Id = 1 }))).Results[0].Status);
    }

    [Fact]
    public async Task Names_and_ids_in_other_scripts_and_with_emoji_are_still_accepted()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);

        var push = await server.Alice.PushAsync(device.Batch(device.Put("team:42", "Notizen é", "日本 🎉", 0, """{"größe":1,"имя":"x","🎉":true}""")));

        Assert.Equal(MutationStatus.Applied, push.Results[0].Status);
        var change = Assert.Single((await server.Alice.PullAsync("team:42")).Changes);
        Assert.Equal(("Notizen é", "日本 🎉"), (change.Collection, change.DocumentId));
        Assert.Equal(3, change.State.Fields.Count);
    }
}
