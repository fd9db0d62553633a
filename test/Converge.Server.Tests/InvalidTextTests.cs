using System.Net;
using System.Text;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>Text that is not Unicode (invalid UTF-8, lone surrogates) anywhere in a body is refused as malformed, and changes nothing.</summary>
public class InvalidTextTests
{
    private const string Scope = "user:alice";

    /// <summary>Where the bad text goes: a push body with one '§' standing for it.</summary>
    public static readonly TheoryData<string> PushPlaces = new()
    {
        """{"client":"00000000000000a§","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice§","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes§","doc":"d","op":"put","hlc":"@T","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d§","op":"put","hlc":"@T","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put§","hlc":"@T","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t§":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":"x§"}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":{"a":[1,"x§"]}}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":{"a§":1}}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":1},"baseValues":{"t":"x§"}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":1},"baseValues":{"t":{"b§":0}}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"patch","hlc":"@T","remove":["r§"]}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"resolve","hlc":"@T","conflict":"c§","fields":{"t":1}}]}""",
        """{"client":"@C","clock":"@T","mutations":[{"id":2,"scope":"user:alice","collection":"notes","doc":"d","op":"put","hlc":"@T","fields":{"t":1},"extra§":true}]}""",
    };

    /// <summary>The bad text: a raw byte that is never UTF-8, a surrogate encoded as UTF-8 (CESU), and lone surrogates escaped in JSON.</summary>
    public static readonly TheoryData<string> BadTexts = new() { "ff", "eda080", @"\ud800", @"\udc00", @"\ud800\u0041" };

    public static TheoryData<string, string> PushCases()
    {
        var cases = new TheoryData<string, string>();
        foreach (var place in PushPlaces)
        {
            foreach (var bad in BadTexts)
            {
                cases.Add(place, bad);
            }
        }

        return cases;
    }

    /// <summary>Makes the bytes of a body: '§' becomes the bad text (hex bytes, or a JSON escape as it is).</summary>
    internal static byte[] Body(string template, string bad, Device device)
    {
        var text = template.Replace("@C", device.Id, StringComparison.Ordinal).Replace("@T", device.Clock.Now().ToString(), StringComparison.Ordinal);
        var at = text.IndexOf('§', StringComparison.Ordinal);
        var badBytes = bad.StartsWith('\\') ? Encoding.ASCII.GetBytes(bad) : Convert.FromHexString(bad);
        return [.. Encoding.UTF8.GetBytes(text[..at]), .. badBytes, .. Encoding.UTF8.GetBytes(text[(at + 1)..])];
    }

    [Theory]
    [MemberData(nameof(PushCases))]
    public async Task A_push_with_text_that_is_not_unicode_is_refused_as_malformed_and_changes_nothing(string template, string bad)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "existing", 0, """{"title":"kept"}""")));
        var before = await server.Alice.SnapshotAsync(Scope);

        using var response = await server.Alice.PostAsync("v1/push", Api.Raw(Body(template, bad, device)));

        var body = await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed);
        Assert.Contains("UTF-8", body, StringComparison.Ordinal);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));
        // The client's progress is untouched: its next mutation id still applies.
        var next = await server.Alice.PushAsync(device.Batch(device.Patch(Scope, "notes", "existing", 1, """{"title":"next"}""") with { Id = 2 }));
        Assert.Equal(MutationStatus.Applied, next.Results[0].Status);
    }

    [Fact]
    public async Task Valid_text_of_every_plane_escaped_or_not_is_stored_and_pulled_back_as_written()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        // A surrogate pair escaped, the same character raw, an escaped quote and backslash before a 'u', and NUL.
        var body = Encoding.UTF8.GetBytes($$$$"""{"client":"{{{{device.Id}}}}","clock":"{{{{device.Clock.Now()}}}}","mutations":[{"id":1,"scope":"user:alice","collection":"notes","doc":"é🎉","op":"put","hlc":"{{{{device.Clock.Now()}}}}","fields":{"t":"\ud83c\udf89 🎉 \"\\ud800 \u0000","ü":{"\ud83c\udf89":["ok"]}}}]}""");

        using var response = await server.Alice.PostAsync("v1/push", Api.Raw(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var state = Assert.Single((await server.Alice.PullAsync(Scope)).Changes).State;
        Assert.Equal("🎉 🎉 \"\\ud800 \0", state.Fields["t"].Value.GetString());
        Assert.Equal("ok", state.Fields["ü"].Value.GetProperty("🎉")[0].GetString());
    }

    /// <summary>Resolve bodies with the bad text in the choice, a field name, a value, a nested name and a nested value.</summary>
    public static readonly TheoryData<string> ResolvePlaces = new()
    {
        """{"choice":"edited§","fields":{"title":"x"}}""",
        """{"choice":"edited","fields":{"title§":"x"}}""",
        """{"choice":"edited","fields":{"title":"x§"}}""",
        """{"choice":"edited","fields":{"title":{"a§":1}}}""",
        """{"choice":"edited","fields":{"title":[{"a":"x§"}]}}""",
        """{"choice":"edited","fields":{"title":"x"},"extra§":1}""",
    };

    public static TheoryData<string, string> ResolveCases()
    {
        var cases = new TheoryData<string, string>();
        foreach (var place in ResolvePlaces)
        {
            foreach (var bad in BadTexts)
            {
                cases.Add(place, bad);
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(ResolveCases))]
    public async Task A_resolve_with_text_that_is_not_unicode_is_refused_as_malformed_and_leaves_the_conflict_open(string template, string bad)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var (id, scope) = await ConflictAsync(server, time);
        var before = await server.Alice.SnapshotAsync(scope);

        using var response = await server.Alice.PostAsync($"v1/conflicts/{id}/resolve", Api.Raw(Body(template, bad, new Device(time))));

        await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed);
        Assert.Equal(before, await server.Alice.SnapshotAsync(scope));
        Assert.Equal(ConflictStatus.Open, Assert.Single(await server.Alice.ConflictsAsync(scope)).Status);
        var resolved = await server.Alice.ResolveAsync(id, new ResolveConflictRequest { Choice = "edited", Fields = Device.Fields("""{"title":"mine"}""") });
        Assert.Equal(ConflictStatus.Resolved, resolved.Status);
    }

    /// <summary>Makes a Manual conflict on the title of note n in team:7 and returns its id.</summary>
    internal static async Task<(string Id, string Scope)> ConflictAsync(TestServer server, Microsoft.Extensions.Time.Testing.FakeTimeProvider time)
    {
        const string scope = "team:7";
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put(scope, "notes", "n", 0, """{"title":"original"}""")));
        await server.Alice.PushAsync(a.Batch(a.Patch(scope, "notes", "n", 1, """{"title":"from A"}""")));
        var pushB = await server.Bob.PushAsync(b.Batch(b.Patch(scope, "notes", "n", 1, """{"title":"from B"}""")));
        return (pushB.Results[0].ConflictId!, scope);
    }
}
