using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;

namespace Converge.Client.Tests.Collections;

public sealed class EventTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Every_local_write_raises_Changed_with_origin_local_before_it_completes()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var seen = new List<DocumentChangedEventArgs<Todo>>();
        object? sender = null;
        todos.Changed += (s, e) =>
        {
            sender = s;
            seen.Add(e);
        };

        await todos.PutAsync("t1", new Todo("a"));
        await todos.PatchAsync("t1", new { done = true });
        await todos.IncrementAsync("t1", "priority", 3);
        await todos.DeleteAsync("t1");
        await client.Collection<Todo>("other").PutAsync("t1", new Todo("elsewhere"));

        Assert.Same(todos, sender);
        Assert.Equal([ChangeKind.Put, ChangeKind.Patch, ChangeKind.Increment, ChangeKind.Delete], seen.Select(e => e.Kind));
        Assert.All(seen, e => Assert.Equal((ChangeOrigin.Local, "todos", "t1", "user:alice"), (e.Origin, e.Collection, e.Id, e.Scope)));
        Assert.Equal(new Todo("a"), seen[0].Value);
        Assert.Equal(new Todo("a", Done: true, Priority: 3), seen[2].Value);
        Assert.Equal("""{"title":"a","done":true,"priority":3}""", seen[2].Json!.Value.GetRawText());
        Assert.Null(seen[3].Value);
        Assert.Null(seen[3].Json);
    }

    [Fact]
    public async Task Instances_of_the_same_collection_see_each_others_writes_and_unsubscribing_stops_events()
    {
        await using var client = await _folder.OpenAsync();
        var writer = client.Collection<Todo>("todos");
        var reader = client.Collection<JsonObject>("todos");
        var count = 0;
        void Handler(object? sender, DocumentChangedEventArgs<JsonObject> e) => count++;
        reader.Changed += Handler;

        await writer.PutAsync("a", new Todo("a"));
        reader.Changed -= Handler;
        await writer.PutAsync("b", new Todo("b"));

        Assert.Equal(1, count);
    }

    [Fact]
    public async Task A_handler_that_throws_does_not_undo_the_write_nor_stop_other_handlers()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var other = 0;
        todos.Changed += (_, _) => throw new InvalidOperationException("boom");
        todos.Changed += (_, _) => other++;

        await todos.PutAsync("a", new Todo("a"));

        Assert.Equal(1, other);
        Assert.Equal(new Todo("a"), await todos.GetAsync("a"));
    }

    [Fact]
    public async Task WatchAsync_streams_the_collections_changes()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        using var cts = new CancellationTokenSource();
        await using var watch = todos.WatchAsync(cts.Token).GetAsyncEnumerator();
        var first = watch.MoveNextAsync();

        await client.Collection<Todo>("other").PutAsync("x", new Todo("x"));
        await todos.PutAsync("a", new Todo("a"));
        await todos.PatchAsync("b", new { title = "b" });

        Assert.True(await Wait.For(first));
        Assert.Equal(("a", ChangeKind.Put, ChangeOrigin.Local), (watch.Current.Id, watch.Current.Kind, watch.Current.Origin));
        Assert.True(await Wait.For(watch.MoveNextAsync()));
        Assert.Equal(("b", ChangeKind.Patch), (watch.Current.Id, watch.Current.Kind));
        Assert.Equal("b", watch.Current.Value!.Title);

        var next = watch.MoveNextAsync();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await next);
    }

    [Fact]
    public async Task WatchAsync_of_an_id_streams_only_that_documents_changes()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await using var watch = todos.WatchAsync("a").GetAsyncEnumerator();
        var first = watch.MoveNextAsync();

        await todos.PutAsync("b", new Todo("b"));
        await todos.PutAsync("a", new Todo("a"));
        await todos.DeleteAsync("b");
        await todos.DeleteAsync("a");

        Assert.True(await Wait.For(first));
        Assert.Equal(("a", ChangeKind.Put), (watch.Current.Id, watch.Current.Kind));
        Assert.True(await Wait.For(watch.MoveNextAsync()));
        Assert.Equal(("a", ChangeKind.Delete), (watch.Current.Id, watch.Current.Kind));
    }

    [Fact]
    public async Task Watch_streams_end_when_the_client_is_disposed()
    {
        var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await using var watch = todos.WatchAsync().GetAsyncEnumerator();
        await using var conflicts = client.Conflicts.WatchAsync().GetAsyncEnumerator();
        var next = watch.MoveNextAsync();
        var nextConflict = conflicts.MoveNextAsync();

        await client.DisposeAsync();

        Assert.False(await Wait.For(next));
        Assert.False(await Wait.For(nextConflict));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => todos.PutAsync("a", new Todo("a")));
    }

    [Fact]
    public async Task Remote_changes_raise_the_same_events_with_origin_remote()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        var seen = new List<DocumentChangedEventArgs<Todo>>();
        todos.Changed += (_, e) => seen.Add(e);
        await using var watch = todos.WatchAsync("t").GetAsyncEnumerator();
        var first = watch.MoveNextAsync();

        await Server.ApplyAsync(client, 1, Server.Change("todos", "t", Server.State("""{"title":"remote","done":true}""", 1)));
        await Server.ApplyAsync(client, 1, Server.Change("todos", "t", Server.State("""{"title":"remote","done":true}""", 1)));
        await Server.ApplyAsync(client, 2, Server.Change("todos", "t", Server.Deleted(2)));

        Assert.Equal([ChangeKind.Put, ChangeKind.Delete], seen.Select(e => e.Kind));
        Assert.All(seen, e => Assert.Equal(ChangeOrigin.Remote, e.Origin));
        Assert.Equal(new Todo("remote", Done: true), seen[0].Value);
        Assert.True(await Wait.For(first));
        Assert.Equal((ChangeOrigin.Remote, ChangeKind.Put), (watch.Current.Origin, watch.Current.Kind));
    }
}
