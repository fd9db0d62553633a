using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Storage;

public sealed class PageApplyTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task A_page_stores_the_server_state_and_revision_and_its_cursor()
    {
        await using var client = await _folder.OpenAsync();

        await Server.ApplyAsync(client, 12, Server.Change("docs", "d", Server.State("""{"a":1,"b":"x"}""", 12)));

        Assert.Equal("""{"a":1,"b":"x"}""", Inspect.LocalJson(client, "docs", "d"));
        var row = Inspect.Row(client, "docs", "d")!.Value;
        Assert.Equal((12L, 0), (row.Revision, row.Pending));
        Assert.Contains("\"rev\":12", row.ServerState, StringComparison.Ordinal);
        Assert.Equal(12, Inspect.Cursor(client, "user:alice"));
        Assert.Equal(0, Inspect.Cursor(client, "team:42"));
    }

    [Fact]
    public async Task A_remote_change_of_another_field_merges_under_a_pending_local_edit()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await Server.ApplyAsync(client, 1, Server.Change("docs", "d", Server.State("""{"title":"t","done":false}""", 1)));
        await docs.PatchAsync("d", new JsonObject { ["done"] = true });

        await Server.ApplyAsync(client, 2, Server.Change("docs", "d", Server.State("""{"title":"remote title","done":false}""", 2)));

        Assert.Equal("""{"title":"remote title","done":true}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Single(Inspect.Outbox(client));
        Assert.Equal((2L, 1), (Inspect.Row(client, "docs", "d")!.Value.Revision, Inspect.Row(client, "docs", "d")!.Value.Pending));
    }

    [Fact]
    public async Task A_remote_change_of_the_same_field_does_not_hide_a_pending_local_edit()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await Server.ApplyAsync(client, 1, Server.Change("docs", "d", Server.State("""{"title":"t","n":1}""", 1)));
        await docs.PatchAsync("d", new JsonObject { ["title"] = "mine" });
        await docs.IncrementAsync("d", "n", 10);

        await Server.ApplyAsync(client, 2, Server.Change("docs", "d", Server.State("""{"title":"theirs","n":5,"extra":true}""", 2)));

        Assert.Equal("""{"title":"mine","n":15,"extra":true}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task Once_nothing_is_pending_the_local_value_is_the_server_state()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PatchAsync("d", new JsonObject { ["title"] = "mine" });
        await client.Store.WriteAsync(tx => { tx.Outbox.Remove(1); return 0; }, default);

        await Server.ApplyAsync(client, 3, Server.Change("docs", "d", Server.State("""{"title":"server decided"}""", 3)));

        Assert.Equal("""{"title":"server decided"}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Equal(0, Inspect.Row(client, "docs", "d")!.Value.Pending);
    }

    [Fact]
    public async Task A_remote_delete_wins_over_a_pending_patch_but_not_over_a_pending_put()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await Server.ApplyAsync(client, 1, Server.Change("docs", "p", Server.State("""{"a":1}""", 1)), Server.Change("docs", "q", Server.State("""{"a":1}""", 1)));
        await docs.PatchAsync("p", new JsonObject { ["a"] = 2 });
        await docs.PutAsync("q", new JsonObject { ["b"] = 2 });

        await Server.ApplyAsync(client, 3, Server.Change("docs", "p", Server.Deleted(2)), Server.Change("docs", "q", Server.Deleted(3)));

        Assert.Null(Inspect.LocalJson(client, "docs", "p"));
        Assert.Equal("""{"b":2}""", Inspect.LocalJson(client, "docs", "q"));
    }

    [Fact]
    public async Task Pages_from_two_sources_never_move_the_cursor_back_except_a_reset()
    {
        await using var client = await _folder.OpenAsync();

        await Server.ApplyAsync(client, 9);
        await Server.ApplyAsync(client, 6);
        Assert.Equal(9, Inspect.Cursor(client, "user:alice"));

        await client.Pages.ApplyAsync("user:alice", [], null, 4, reset: true, default);
        Assert.Equal(4, Inspect.Cursor(client, "user:alice"));
    }

    [Fact]
    public async Task A_change_older_than_the_stored_state_is_skipped()
    {
        await using var client = await _folder.OpenAsync();
        await Server.ApplyAsync(client, 5, Server.Change("docs", "d", Server.State("""{"v":"new"}""", 5)));

        await Server.ApplyAsync(client, 5, Server.Change("docs", "d", Server.State("""{"v":"old"}""", 3)));

        Assert.Equal("""{"v":"new"}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task A_reset_drops_settled_documents_keeps_the_outbox_and_restarts_the_cursor()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await Server.ApplyAsync(client, 40, Server.Change("docs", "settled", Server.State("""{"a":1}""", 10)), Server.Change("docs", "edited", Server.State("""{"a":1}""", 11)));
        await client.Collection<JsonObject>("docs", "team:42").PutAsync("other-scope", new JsonObject { ["a"] = 1 });
        await docs.PatchAsync("edited", new JsonObject { ["b"] = 2 });
        await docs.PutAsync("new", new JsonObject { ["c"] = 3 });
        var deletes = new List<string>();
        docs.Changed += (_, e) =>
        {
            if (e.Kind == ChangeKind.Delete)
            {
                deletes.Add(e.Id);
            }
        };

        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "edited", Server.State("""{"a":9}""", 50))], null, 50, reset: true, default);

        Assert.Null(Inspect.LocalJson(client, "docs", "settled"));
        Assert.Equal(["settled"], deletes);
        Assert.Equal("""{"a":9,"b":2}""", Inspect.LocalJson(client, "docs", "edited"));
        Assert.Equal("""{"c":3}""", Inspect.LocalJson(client, "docs", "new"));
        Assert.Equal("""{"a":1}""", Inspect.LocalJson(client, "docs", "other-scope", "team:42"));
        Assert.Equal(3, Inspect.Outbox(client).Count);
        Assert.Equal(50, Inspect.Cursor(client, "user:alice"));
    }

    [Fact]
    public async Task Conflict_records_are_stored_listed_and_removed_when_resolved_on_the_server()
    {
        await using var client = await _folder.OpenAsync();
        var record = Server.Conflict("c1", "user:alice", "docs", "d", 4, ("title", "\"server\"", "\"client\""));
        var changes = new List<ConflictChangedEventArgs>();
        client.Conflicts.Changed += (_, e) => changes.Add(e);

        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"title":"server"}""", 3))], [record], 4, false, default);

        var listed = Assert.Single(await client.Conflicts.ListAsync());
        Assert.Equal(("c1", "docs", "d", InboxConflictStatus.Open), (listed.Id, listed.Collection, listed.DocumentId, listed.Status));
        Assert.Equal("client", listed.Fields[0].Client.Value.GetString());
        Assert.Equal(record.CreatedAt, listed.CreatedAt);

        await client.Pages.ApplyAsync("user:alice", [], [record with { Status = ConflictStatus.Resolved, Revision = 5, Resolution = "server" }], 5, false, default);

        Assert.Empty(await client.Conflicts.ListAsync());
        Assert.Equal([InboxConflictStatus.Open, InboxConflictStatus.Resolved], changes.Select(c => c.Status));
        Assert.Equal("c1", changes[1].ConflictId);
    }

    [Fact]
    public async Task A_page_that_breaks_the_protocol_is_refused_whole()
    {
        await using var client = await _folder.OpenAsync();

        await Assert.ThrowsAsync<ConvergeSyncException>(() => client.Pages.ApplyAsync("user:bob", [], null, 1, false, default));
        await Assert.ThrowsAsync<ConvergeSyncException>(() => client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "ok", Server.State("{}", 1)), Server.Change("", "bad", Server.State("{}", 2))], null, 2, false, default));
        await Assert.ThrowsAsync<ConvergeSyncException>(() => client.Pages.ApplyAsync("user:alice", [], [Server.Conflict("c", "team:42", "docs", "d", 1, ("a", "1", "2"))], 2, false, default));

        Assert.Equal(0, Inspect.Count(client, "documents"));
        Assert.Equal(0, Inspect.Cursor(client, "user:alice"));
    }

    [Fact]
    public async Task The_clock_survives_a_restart_even_when_the_wall_clock_goes_back()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        HybridTimestamp first;
        string clientId;
        await using (var client = await _folder.OpenAsync(configure: o => o.TimeProvider = time))
        {
            clientId = client.ClientId;
            var docs = client.Collection<JsonObject>("docs");
            await docs.PutAsync("a", new JsonObject { ["x"] = 1 });
            await docs.PutAsync("a", new JsonObject { ["x"] = 2 });
            first = Inspect.Outbox(client)[^1].Hlc;
            Assert.Equal((1_800_000_000_000L, 1), (first.Physical, first.Counter));
        }

        var earlier = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using (var client = await _folder.OpenAsync(configure: o => o.TimeProvider = earlier))
        {
            Assert.Equal(clientId, client.ClientId);
            await client.Collection<JsonObject>("docs").PatchAsync("a", new JsonObject { ["x"] = 3 });
            var after = Inspect.Outbox(client)[^1].Hlc;
            Assert.True(after > first, $"{after} should follow {first}");
        }
    }
}
