using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client.Live;
using Converge.Client.Sync;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Live;

/// <summary>How a client takes a live notice: applied when it follows the cursor, skipped when held, a pull otherwise.</summary>
public sealed class LiveNoticeTests : FakeServerTests
{
    private const string Scope = "user:alice";

    [Fact]
    public async Task A_page_that_follows_the_cursor_is_applied_with_its_cursor_and_raises_remote_events()
    {
        await using var client = await Folder.OpenAsync(FakeServer.Url);
        await client.Pages.ApplyAsync(Scope, [Server.Change("docs", "a", Server.State("""{"v":1}""", 5))], null, 5, false, default);
        var events = new List<(string Id, ChangeOrigin Origin)>();
        client.Collection<JsonObject>("docs").Changed += (_, e) => events.Add((e.Id, e.Origin));

        using (var notice = Notice(after: 5, Page(7, Server.Change("docs", "b", Server.State("""{"v":2}""", 6)), Server.Change("docs", "a", Server.State("""{"v":3}""", 7)))))
        {
            await client.Engine.ApplyLiveAsync(notice, default);
        }

        Assert.Equal(7, Inspect.Cursor(client, Scope));
        Assert.Equal([("b", ChangeOrigin.Remote), ("a", ChangeOrigin.Remote)], events);
        Assert.Equal(3, (await client.Collection<JsonObject>("docs").GetAsync("a"))!["v"]!.GetValue<int>());
        Assert.Empty(FakeServer.Pulls);
    }

    [Fact]
    public async Task A_page_held_already_is_skipped_and_a_gap_or_a_poke_pulls_the_scope_from_its_cursor()
    {
        await using var client = await Folder.OpenAsync(FakeServer.Url);
        await client.Pages.ApplyAsync(Scope, [Server.Change("docs", "a", Server.State("""{"v":1}""", 9))], null, 9, false, default);

        // Held: a page up to 8 when the cursor is 9 (the resync pull brought it first).
        using (var held = Notice(after: 7, Page(8, Server.Change("docs", "a", Server.State("""{"v":0}""", 8)))))
        {
            await client.Engine.ApplyLiveAsync(held, default);
        }

        Assert.Equal(1, (await client.Collection<JsonObject>("docs").GetAsync("a"))!["v"]!.GetValue<int>());
        Assert.Empty(FakeServer.Pulls);

        // A gap: the page follows 12, the client is at 9; the client pulls after 9 instead.
        FakeServer.OnPull = (_, after, _) => Task.FromResult(FakeSyncServer.Json(FakeServer.Page(Scope, 14, changes: [Server.Change("docs", "c", Server.State("""{"v":4}""", 14))])));
        using (var gap = Notice(after: 12, Page(14, Server.Change("docs", "c", Server.State("""{"v":4}""", 14)))))
        {
            await client.Engine.ApplyLiveAsync(gap, default);
        }

        Assert.Equal((Scope, 9L), (FakeServer.Pulls.Single().Scope, FakeServer.Pulls.Single().After));
        Assert.Equal(14, Inspect.Cursor(client, Scope));

        using (var poke = new LiveNotice(Scope, 0, null))
        {
            await client.Engine.ApplyLiveAsync(poke, default);
        }

        Assert.Equal(2, FakeServer.Pulls.Count);
        Assert.Equal(14, FakeServer.Pulls.Last().After);
    }

    [Fact]
    public async Task A_page_of_a_scope_the_client_does_not_follow_is_a_protocol_error_and_changes_nothing()
    {
        await using var client = await Folder.OpenAsync(FakeServer.Url);
        var page = FakeServer.Page("team:other", 3, changes: [Server.Change("docs", "x", Server.State("{}", 3))]);
        using var notice = new LiveNotice("team:other", 0, Parse(page));

        await Assert.ThrowsAsync<ConvergeSyncException>(() => client.Engine.ApplyLiveAsync(notice, default));
        Assert.Equal(0, Inspect.Count(client, "documents"));
    }

    private PullResponse Page(long cursor, params DocumentChange[] changes) => FakeServer.Page(Scope, cursor, changes: changes);

    private static LiveNotice Notice(long after, PullResponse page) => new(page.Scope, after, Parse(page));

    private static PulledPage Parse(PullResponse page)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(page, ProtocolJson.PullResponse);
        var pooled = ArrayPool<byte>.Shared.Rent(json.Length + 10);
        json.CopyTo(pooled, 10);
        return PulledPage.Parse(pooled, 10, json.Length);
    }
}
