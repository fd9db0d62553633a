using System.Text.Json.Nodes;
using Bunit;
using Converge.Client;
using Converge.EndToEnd.Tests;
using Converge.Protocol.Documents;

namespace Converge.Components.Tests;

/// <summary>The components over real clients of a real server: what a person sees and what their choices write.</summary>
public sealed class ComponentTests : IAsyncLifetime
{
    private readonly BunitContext _context = new();
    private SyncServer _server = null!;

    public async Task InitializeAsync() => _server = await SyncServer.StartAsync(Rules.For("notes", ConflictPolicy.Manual));

    public async Task DisposeAsync()
    {
        await _context.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task SyncStatus_shows_the_client_state_as_it_changes()
    {
        var client = await _server.OpenClientAsync("a");
        var status = _context.Render<SyncStatus>(p => p.Add(s => s.Client, client));
        Assert.Contains("Offline", status.Find("[role=status]").TextContent);
        Assert.Contains("never", status.Markup);

        await client.Collection<Note>("notes").PutAsync("n1", new Note { Title = "one" });
        status.WaitForAssertion(() => Assert.Contains("1 pending", status.Find("[role=status]").TextContent));

        await client.SyncAsync();
        status.WaitForAssertion(() =>
        {
            var text = status.Find("[role=status]").TextContent;
            Assert.Contains("Up to date", text);
            Assert.Contains("0 pending", text);
            Assert.DoesNotContain("never", text);
        });

        // The app knows the network is gone: the word says so whatever the client last saw.
        status.Render(p => p.Add(s => s.Offline, true));
        Assert.Contains("Offline", status.Find("[role=status]").TextContent);
    }

    [Fact]
    public async Task The_resolver_writes_a_per_field_mix_as_edited_values()
    {
        var (a, b) = await ConflictAsync(
            new JsonObject { ["text"] = "A's text", ["color"] = "red" },
            new JsonObject { ["text"] = "B's text", ["color"] = "blue" });
        var resolver = _context.Render<ConflictResolver>(p => p.Add(r => r.Client, b));
        resolver.WaitForAssertion(() => Assert.Contains("1 of 1", resolver.Markup));

        // Mine (B's write) for the text, theirs (the server's, A's) for the color.
        Radio(resolver, "text", 0).Change(true);
        Radio(resolver, "color", 1).Change(true);
        resolver.FindAll("button").Single(x => x.TextContent == "Resolve").Click();

        resolver.WaitForAssertion(() => Assert.Contains("No conflicts", resolver.Markup));
        var note = (await b.Collection<Note>("notes").GetAsync("n"))!;
        Assert.Equal("B's text", note.Text);
        Assert.Equal("red", note.Color);

        // The resolution syncs like any write.
        await b.SyncAsync();
        await a.SyncAsync();
        Assert.Equal("B's text", (await a.Collection<Note>("notes").GetAsync("n"))!.Text);
        Assert.Empty(await a.Conflicts.ListAsync());
    }

    [Fact]
    public async Task The_resolver_refuses_an_edited_value_that_is_not_JSON_and_writes_nothing()
    {
        var (_, b) = await ConflictAsync(new JsonObject { ["pinned"] = true }, new JsonObject { ["pinned"] = false });
        var resolver = _context.Render<ConflictResolver>(p => p.Add(r => r.Client, b));
        resolver.WaitForAssertion(() => Assert.Contains("1 of 1", resolver.Markup));
        var pending = await b.GetPendingCountAsync();

        Radio(resolver, "pinned", 2).Change(true);
        resolver.Find("textarea").Change("tru");
        resolver.FindAll("button").Single(x => x.TextContent == "Resolve").Click();

        Assert.Contains("not valid JSON", resolver.Find("[role=alert]").TextContent);
        Assert.Equal(InboxConflictStatus.Open, Assert.Single(await b.Conflicts.ListAsync()).Status);
        Assert.Equal(pending, await b.GetPendingCountAsync());
        Assert.True((await b.Collection<Note>("notes").GetAsync("n"))!.Pinned);
    }

    [Fact]
    public async Task A_conflict_resolved_on_another_device_leaves_the_queue()
    {
        var (a, b) = await ConflictAsync(new JsonObject { ["text"] = "A" }, new JsonObject { ["text"] = "B" });
        var resolver = _context.Render<ConflictResolver>(p => p.Add(r => r.Client, a));
        resolver.WaitForAssertion(() => Assert.Contains("1 of 1", resolver.Markup));

        var conflict = Assert.Single(await b.Conflicts.ListAsync());
        await b.Conflicts.ResolveAsync(conflict.Id, ConflictChoice.Theirs);
        await b.SyncAsync();
        await a.SyncAsync();

        resolver.WaitForAssertion(() => Assert.Contains("No conflicts", resolver.Markup));
    }

    /// <summary>Two synced devices edit the same fields of note "n"; A syncs first, so B's write meets the conflict.</summary>
    private async Task<(ConvergeClient A, ConvergeClient B)> ConflictAsync(JsonObject byA, JsonObject byB)
    {
        var a = await _server.OpenClientAsync("a");
        var b = await _server.OpenClientAsync("b");
        await a.Collection<Note>("notes").PutAsync("n", new Note { Title = "n", Text = "start", Color = "white" });
        await a.SyncAsync();
        await b.SyncAsync();
        await a.Collection<Note>("notes").PatchAsync("n", byA);
        await b.Collection<Note>("notes").PatchAsync("n", byB);
        await a.SyncAsync();
        await b.SyncAsync();
        await a.SyncAsync();
        return (a, b);
    }

    private static AngleSharp.Dom.IElement Radio(IRenderedComponent<ConflictResolver> resolver, string field, int index) =>
        resolver.FindAll($"fieldset[aria-label={field}] input[type=radio]")[index];
}

/// <summary>A note of the tests, as the sample app writes it.</summary>
public sealed record Note
{
    public string Title { get; init; } = "";

    public string Text { get; init; } = "";

    public string Color { get; init; } = "";

    public bool Pinned { get; init; }
}
