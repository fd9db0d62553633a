using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Conflicts;

public sealed class ConflictInboxTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    /// <summary>A document whose title and note conflict: the server kept its values, the record holds the client's.</summary>
    private static async Task<ConvergeClient> WithConflictAsync(TestFolder folder)
    {
        var client = await folder.OpenAsync();
        var record = Server.Conflict("c1", "user:alice", "docs", "d", 6, ("title", "\"server title\"", "\"my title\""), ("note", "\"server note\"", "\"my note\""));
        await client.Pages.ApplyAsync(
            "user:alice",
            [Server.Change("docs", "d", Server.State("""{"title":"server title","note":"server note","n":1}""", 5))],
            [record],
            6,
            false,
            default);
        return client;
    }

    [Fact]
    public async Task Resolving_with_mine_writes_the_client_values_and_a_resolve_mutation_in_one_go()
    {
        await using var client = await WithConflictAsync(_folder);
        var docChanges = new List<DocumentChangedEventArgs<JsonObject>>();
        client.Collection<JsonObject>("docs").Changed += (_, e) => docChanges.Add(e);
        await using var watch = client.Conflicts.WatchAsync().GetAsyncEnumerator();
        var next = watch.MoveNextAsync();

        await client.Conflicts.ResolveAsync("c1", ConflictChoice.Mine);

        Assert.Equal("""{"title":"my title","note":"my note","n":1}""", Inspect.LocalJson(client, "docs", "d"));
        var mutation = Assert.Single(Inspect.Outbox(client));
        Assert.Equal((MutationKind.Resolve, "c1", 5L), (mutation.Kind, mutation.ConflictId, mutation.BaseRevision));
        Assert.Equal(["note", "title"], mutation.Fields!.Keys.Order());
        Assert.Equal("my title", mutation.Fields!["title"].GetString());
        Assert.Equal("server title", mutation.BaseValues!["title"].GetString());
        Assert.Equal(InboxConflictStatus.Resolving, Assert.Single(await client.Conflicts.ListAsync()).Status);
        Assert.Equal((ChangeKind.Resolve, ChangeOrigin.Local), (Assert.Single(docChanges).Kind, docChanges[0].Origin));
        Assert.True(await Wait.For(next));
        Assert.Equal(("c1", InboxConflictStatus.Resolving), (watch.Current.ConflictId, watch.Current.Status));
    }

    [Fact]
    public async Task Resolving_with_theirs_writes_the_server_values()
    {
        await using var client = await WithConflictAsync(_folder);
        await client.Collection<JsonObject>("docs").PatchAsync("d", new JsonObject { ["title"] = "edited meanwhile" });

        await client.Conflicts.ResolveAsync("c1", ConflictChoice.Theirs);

        Assert.Equal("""{"title":"server title","note":"server note","n":1}""", Inspect.LocalJson(client, "docs", "d"));
        var resolve = Inspect.Outbox(client)[^1];
        Assert.Equal(MutationKind.Resolve, resolve.Kind);
        Assert.Equal("server note", resolve.Fields!["note"].GetString());
    }

    [Fact]
    public async Task Resolving_with_edited_values_writes_them_and_leaves_the_other_fields()
    {
        await using var client = await WithConflictAsync(_folder);

        await client.Conflicts.ResolveAsync("c1", new JsonObject { ["title"] = "merged title" });

        Assert.Equal("""{"title":"merged title","note":"server note","n":1}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Equal(["title"], Assert.Single(Inspect.Outbox(client)).Fields!.Keys);
    }

    [Fact]
    public async Task Invalid_resolutions_are_refused_and_change_nothing()
    {
        await using var client = await WithConflictAsync(_folder);

        await Assert.ThrowsAsync<ArgumentException>(() => client.Conflicts.ResolveAsync("c1", new JsonObject { ["n"] = 2 }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.Conflicts.ResolveAsync("c1", new JsonObject()));
        await Assert.ThrowsAsync<ArgumentException>(() => client.Conflicts.ResolveAsync("nope", ConflictChoice.Mine));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.Conflicts.ResolveAsync("c1", (ConflictChoice)7));
        Assert.Equal(0, Inspect.Count(client, "outbox"));
        Assert.Equal(InboxConflictStatus.Open, Assert.Single(await client.Conflicts.ListAsync()).Status);

        await client.Conflicts.ResolveAsync("c1", ConflictChoice.Mine);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.Conflicts.ResolveAsync("c1", ConflictChoice.Theirs));
        Assert.Single(Inspect.Outbox(client));
    }

    [Fact]
    public async Task A_pending_resolution_stays_resolving_when_the_open_record_comes_again_and_its_edit_is_rebased()
    {
        await using var client = await WithConflictAsync(_folder);
        await client.Conflicts.ResolveAsync("c1", ConflictChoice.Mine);
        var record = (await client.Conflicts.ListAsync())[0].Record;

        await client.Pages.ApplyAsync(
            "user:alice",
            [Server.Change("docs", "d", Server.State("""{"title":"server title","note":"server note","n":2}""", 7))],
            [record with { Revision = 8 }],
            8,
            false,
            default);

        Assert.Equal(InboxConflictStatus.Resolving, Assert.Single(await client.Conflicts.ListAsync()).Status);
        Assert.Equal("""{"title":"my title","note":"my note","n":2}""", Inspect.LocalJson(client, "docs", "d"));
    }
}
