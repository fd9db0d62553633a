using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Collections;

public sealed class WriteBatchTests : FakeServerTests
{

    [Fact]
    public async Task A_batch_commits_puts_patches_increments_and_deletes_across_collections_and_scopes_each_as_its_own_mutation()
    {
        await using var client = await Folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var notes = client.Collection<JsonObject>("notes", "team:42");
        await todos.PutAsync("old", new Todo("to delete"));

        var written = await client.WriteBatchAsync(b => b
            .Put(todos, "t1", new Todo("Buy milk"))
            .Patch(todos, "t2", new { priority = 3 })
            .Put(notes, "n1", new JsonObject { ["text"] = "hello" })
            .Increment(notes, "n1", "views", 2)
            .Delete(todos, "old"));

        Assert.Equal(5, written);
        Assert.Equal(new Todo("Buy milk"), await todos.GetAsync("t1"));
        Assert.Equal("""{"priority":3}""", Inspect.LocalJson(client, "todos", "t2"));
        Assert.Equal("""{"text":"hello","views":2}""", Inspect.LocalJson(client, "notes", "n1", "team:42"));
        Assert.Null(await todos.GetAsync("old"));
        var outbox = Inspect.Outbox(client);
        Assert.Equal([1L, 2, 3, 4, 5, 6], outbox.Select(m => m.Id));
        Assert.Equal(
            [MutationKind.Put, MutationKind.Put, MutationKind.Patch, MutationKind.Put, MutationKind.Increment, MutationKind.Delete],
            outbox.Select(m => m.Kind));
        Assert.Equal(["user:alice", "user:alice", "user:alice", "team:42", "team:42", "user:alice"], outbox.Select(m => m.Scope));
        Assert.True(outbox.Zip(outbox.Skip(1)).All(p => p.First.Hlc < p.Second.Hlc));
        Assert.Equal(6, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task The_events_of_a_batch_are_raised_after_its_commit_in_order()
    {
        await using var client = await Folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var seen = new List<(string Id, ChangeKind Kind, ChangeOrigin Origin)>();
        string? lastSeenFromFirstEvent = null;
        todos.Changed += (_, e) =>
        {
            if (seen.Count == 0)
            {
                // The whole batch is committed before the first event: the last write is already readable.
                lastSeenFromFirstEvent = Inspect.LocalJson(client, "todos", "c");
            }

            seen.Add((e.Id, e.Kind, e.Origin));
        };

        await client.WriteBatchAsync(b => b.Put(todos, "a", new Todo("a")).Put(todos, "b", new Todo("b")).Patch(todos, "a", new { done = true }).Put(todos, "c", new Todo("c")));

        Assert.Equal(
            [("a", ChangeKind.Put, ChangeOrigin.Local), ("b", ChangeKind.Put, ChangeOrigin.Local), ("a", ChangeKind.Patch, ChangeOrigin.Local), ("c", ChangeKind.Put, ChangeOrigin.Local)],
            seen);
        Assert.Equal("""{"title":"c","done":false,"priority":0}""", lastSeenFromFirstEvent);
        Assert.Equal(new Todo("a", Done: true), await todos.GetAsync("a"));
    }

    [Fact]
    public async Task A_write_that_does_not_fit_the_store_rolls_the_whole_batch_back_and_raises_nothing()
    {
        await using var client = await Folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await todos.PutAsync("gone", new Todo("x"));
        await todos.DeleteAsync("gone");
        var events = 0;
        todos.Changed += (_, _) => events++;

        await Assert.ThrowsAsync<InvalidOperationException>(() => client.WriteBatchAsync(b => b
            .Put(todos, "new", new Todo("new"))
            .Patch(todos, "gone", new { done = true })));

        Assert.Equal(0, events);
        Assert.Null(await todos.GetAsync("new"));
        Assert.Equal(2, await client.GetPendingCountAsync());

        // The mutation ids the failed batch took are not spent.
        await todos.PutAsync("after", new Todo("after"));
        Assert.Equal(3, Inspect.Outbox(client)[^1].Id);
    }

    [Fact]
    public async Task An_invalid_write_throws_from_the_builder_and_nothing_is_written()
    {
        await using var client = await Folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var docs = client.Collection<JsonObject>("docs");

        await Assert.ThrowsAsync<ArgumentException>(() => client.WriteBatchAsync(b => b.Put(todos, "ok", new Todo("ok")).Put(todos, "", new Todo("no id"))));
        await Assert.ThrowsAsync<ArgumentException>(() => client.WriteBatchAsync(b => b.Patch(docs, "d", 42)));
        await Assert.ThrowsAsync<ArgumentException>(() => client.WriteBatchAsync(b => b.Increment(docs, "d", "n", double.NaN)));

        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Null(await todos.GetAsync("ok"));
    }

    [Fact]
    public async Task A_collection_of_another_client_is_refused()
    {
        await using var client = await Folder.OpenAsync();
        using var otherFolder = new TestFolder();
        await using var other = await otherFolder.OpenAsync();
        var foreign = other.Collection<Todo>("todos");

        var e = await Assert.ThrowsAsync<ArgumentException>(() => client.WriteBatchAsync(b => b.Put(foreign, "t", new Todo("t"))));
        Assert.Equal("collection", e.ParamName);
    }

    [Fact]
    public async Task An_empty_batch_and_a_delete_of_a_deleted_document_write_nothing()
    {
        await using var client = await Folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await todos.PutAsync("t", new Todo("t"));
        await todos.DeleteAsync("t");

        Assert.Equal(0, await client.WriteBatchAsync(_ => { }));
        Assert.Equal(1, await client.WriteBatchAsync(b => b.Delete(todos, "t").Put(todos, "u", new Todo("u"))));
        Assert.Equal(3, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_document_written_twice_in_a_batch_gets_two_mutations_the_second_over_the_first()
    {
        await using var client = await Folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        await client.WriteBatchAsync(b => b
            .Put(docs, "d", new JsonObject { ["a"] = 1, ["b"] = 2 })
            .Put(docs, "d", new JsonObject { ["a"] = 3 }));

        Assert.Equal("""{"a":3}""", Inspect.LocalJson(client, "docs", "d"));
        var outbox = Inspect.Outbox(client);
        Assert.Equal(2, outbox.Count);
        Assert.Null(outbox[0].Remove);
        Assert.Equal(["b"], outbox[1].Remove!);
        Assert.Equal(2, Inspect.Row(client, "docs", "d")!.Value.Pending);
    }

    [Fact]
    public async Task A_large_batch_syncs_in_push_batches_and_the_outbox_drains()
    {
        await using var client = await Folder.OpenAsync(FakeServer.Url, o => o.PushBatchSize = 500);
        var todos = client.Collection<Todo>("todos");

        await client.WriteBatchAsync(b =>
        {
            for (var i = 0; i < 1_200; i++)
            {
                b.Put(todos, $"t{i:D4}", new Todo($"todo {i}", Priority: i % 5));
            }
        });
        var report = await client.SyncAsync();

        Assert.Equal(1_200, report.Pushed);
        Assert.Equal([500, 500, 200], FakeServer.Pushes.Select(p => p.Mutations.Count));
        Assert.Equal(Enumerable.Range(1, 1_200).Select(i => (long)i), FakeServer.Pushes.SelectMany(p => p.Mutations).Select(m => m.Id));
        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Equal(0, Inspect.Row(client, "todos", "t0599")!.Value.Pending);
        Assert.Equal(1_200, await todos.Query().CountAsync());
    }
}
