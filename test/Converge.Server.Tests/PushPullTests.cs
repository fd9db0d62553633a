using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

public class PushPullTests
{
    [Fact]
    public async Task A_pushed_document_comes_back_in_a_pull()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);

        var push = await server.Alice.PushAsync(device.Batch(device.Put("user:alice", "notes", "n1", 0, """{"title":"Hello","tags":["a","b"],"n":{"x":1}}""")));

        var result = Assert.Single(push.Results);
        Assert.Equal(MutationStatus.Applied, result.Status);
        Assert.Equal(1, result.Revision);
        Assert.Null(result.Restamped);
        var pull = await server.Alice.PullAsync("user:alice");
        var change = Assert.Single(pull.Changes);
        Assert.Equal("notes", change.Collection);
        Assert.Equal("n1", change.DocumentId);
        Assert.Equal(1, change.State.Revision);
        Assert.Equal("""{"title":"Hello","tags":["a","b"],"n":{"x":1}}""", change.State.ToJson()!.Value.GetRawText());
        Assert.Equal(device.Node, change.State.Fields["title"].Writer);
        Assert.Equal(1, pull.Cursor);
        Assert.False(pull.HasMore);
        Assert.False(pull.Reset);
        Assert.Null(pull.Conflicts);
        Assert.True(pull.Clock > push.Clock, "The server's clock moves forward.");

        var again = await server.Alice.PullAsync("user:alice", pull.Cursor);
        Assert.Empty(again.Changes);
        Assert.Equal(1, again.Cursor);
    }

    [Fact]
    public async Task Pull_pages_follow_revision_order_and_cursors_never_skip_or_repeat()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("tasks", new() { Policy = Protocol.Documents.ConflictPolicy.Manual }));
        var device = new Device(time);
        var other = new Device(time);
        var mutations = Enumerable.Range(0, 20).Select(i => device.Put("team:1", "tasks", $"t{i}", 0, $$"""{"i":{{i}}}""")).ToArray();
        await server.Alice.PushAsync(device.Batch(mutations));
        // Rewrite some so their revision moves to the end, and open a conflict, which takes a revision of its own.
        await server.Alice.PushAsync(device.Batch(device.Patch("team:1", "tasks", "t3", 4, """{"i":300}""")));
        await server.Bob.PushAsync(other.Batch(other.Patch("team:1", "tasks", "t5", 6, """{"i":-5}""")));
        var conflict = await server.Alice.PushAsync(device.Batch(device.Patch("team:1", "tasks", "t5", 6, """{"i":500}""")));
        Assert.Equal(MutationStatus.Conflict, conflict.Results[0].Status);

        var pages = await server.Alice.PullAllAsync("team:1", limit: 3);

        var revisions = new List<long>();
        long previousCursor = 0;
        foreach (var page in pages)
        {
            var items = page.Changes.Select(c => c.State.Revision).Concat((page.Conflicts ?? []).Select(c => c.Revision)).Order().ToList();
            Assert.True(items.Count <= 3);
            Assert.All(items, r => Assert.True(r > previousCursor));
            Assert.Equal(items.Count > 0 ? items.Max() : previousCursor, page.Cursor);
            Assert.Equal(page.Changes.Select(c => c.State.Revision).Order(), page.Changes.Select(c => c.State.Revision));
            revisions.AddRange(items);
            previousCursor = page.Cursor;
        }

        Assert.Equal(revisions.Order().Distinct(), revisions);
        Assert.Equal(21, revisions.Count); // 20 documents and one conflict record, each once, at its latest revision
        var all = pages.SelectMany(p => p.Changes).ToList();
        Assert.Equal(20, all.Select(c => c.DocumentId).Distinct().Count());
        Assert.Equal(300, all.Single(c => c.DocumentId == "t3").State.Fields["i"].Value.GetInt32());
        Assert.Equal(-5, all.Single(c => c.DocumentId == "t5").State.Fields["i"].Value.GetInt32());
        var record = Assert.Single(pages.SelectMany(p => p.Conflicts ?? []));
        Assert.Equal(conflict.Results[0].ConflictId, record.Id);
        Assert.Equal(23, pages[^1].Cursor);
    }

    [Fact]
    public async Task Concurrent_edits_of_different_fields_merge()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var phone = new Device(time);
        var laptop = new Device(time);
        await server.Alice.PushAsync(phone.Batch(phone.Put("team:1", "notes", "n", 0, """{"title":"t","body":"b"}""")));

        // Both edit from revision 1, offline, different fields.
        var fromPhone = phone.Patch("team:1", "notes", "n", 1, """{"title":"phone title"}""");
        var fromLaptop = laptop.Patch("team:1", "notes", "n", 1, """{"body":"laptop body"}""");
        var first = await server.Alice.PushAsync(phone.Batch(fromPhone));
        var second = await server.Bob.PushAsync(laptop.Batch(fromLaptop));

        Assert.Equal(MutationStatus.Applied, first.Results[0].Status);
        Assert.Equal(MutationStatus.Applied, second.Results[0].Status);
        var state = Assert.Single((await server.Alice.PullAsync("team:1")).Changes).State;
        Assert.Equal("""{"title":"phone title","body":"laptop body"}""", state.ToJson()!.Value.GetRawText());
        Assert.Equal(3, state.Revision);
    }

    [Fact]
    public async Task Increments_add_up_and_a_bad_increment_is_rejected_alone()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var a = new Device(time);
        var b = new Device(time);

        await server.Alice.PushAsync(a.Batch(a.Increment("team:1", "counters", "c", """{"n":2}"""), a.Increment("team:1", "counters", "c", """{"n":3}""")));
        var response = await server.Bob.PushAsync(b.Batch(
            b.Increment("team:1", "counters", "c", """{"n":5}"""),
            b.Put("team:1", "counters", "text", 0, """{"n":"x"}"""),
            b.Increment("team:1", "counters", "text", """{"n":1}""")));

        Assert.Equal([MutationStatus.Applied, MutationStatus.Applied, MutationStatus.Rejected], response.Results.Select(r => r.Status));
        Assert.NotNull(response.Results[2].Reason);
        var documents = (await server.Alice.PullAsync("team:1")).Changes.ToDictionary(c => c.DocumentId);
        Assert.Equal(10, documents["c"].State.Fields["n"].Value.GetInt32());
        Assert.Equal("x", documents["text"].State.Fields["n"].Value.GetString());
    }

    [Fact]
    public async Task A_retried_push_is_applied_once()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        var batch = device.Batch(
            device.Put("user:alice", "notes", "n1", 0, """{"title":"one"}"""),
            device.Increment("user:alice", "counters", "c", """{"n":1}"""));
        var first = await server.Alice.PushAsync(batch);
        var before = await server.Alice.SnapshotAsync("user:alice");

        // The response was lost: the client sends the same batch again.
        var second = await server.Alice.PushAsync(batch);

        Assert.All(first.Results, r => Assert.Equal(MutationStatus.Applied, r.Status));
        Assert.All(second.Results, r => Assert.Equal(MutationStatus.Duplicate, r.Status));
        Assert.All(second.Results, r => Assert.Equal(0, r.Revision));
        Assert.Equal(before, await server.Alice.SnapshotAsync("user:alice"));

        // A batch that overlaps the applied one applies only its new mutations.
        var overlap = await server.Alice.PushAsync(device.Batch([.. batch.Mutations, device.Increment("user:alice", "counters", "c", """{"n":1}""")]));
        Assert.Equal([MutationStatus.Duplicate, MutationStatus.Duplicate, MutationStatus.Applied], overlap.Results.Select(r => r.Status));
        var counter = (await server.Alice.PullAsync("user:alice")).Changes.Single(c => c.DocumentId == "c");
        Assert.Equal(2, counter.State.Fields["n"].Value.GetInt32());
    }

    [Fact]
    public async Task Delete_leaves_a_tombstone_and_a_put_after_it_revives()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put("user:alice", "notes", "n", 0, """{"title":"t"}""")));

        var deleted = await server.Alice.PushAsync(device.Batch(device.Delete("user:alice", "notes", "n", 1)));
        var tombstone = Assert.Single((await server.Alice.PullAsync("user:alice")).Changes).State;
        var revived = await server.Alice.PushAsync(device.Batch(device.Put("user:alice", "notes", "n", 2, """{"title":"again"}""")));

        Assert.Equal(MutationStatus.Applied, deleted.Results[0].Status);
        Assert.True(tombstone.Deleted);
        Assert.Null(tombstone.ToJson());
        Assert.Equal(MutationStatus.Applied, revived.Results[0].Status);
        var state = Assert.Single((await server.Alice.PullAsync("user:alice", 2)).Changes).State;
        Assert.False(state.Deleted);
        Assert.Equal("again", state.Fields["title"].Value.GetString());
    }

    [Fact]
    public async Task Concurrent_pushes_from_many_clients_all_apply_with_distinct_revisions()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var devices = Enumerable.Range(0, 8).Select(_ => new Device(time)).ToArray();

        var responses = await Task.WhenAll(devices.Select((d, i) => Task.Run(async () =>
        {
            var results = new List<MutationResult>();
            for (var batch = 0; batch < 5; batch++)
            {
                var mutations = Enumerable.Range(0, 10).Select(k => d.Put("team:load", "items", $"d{i}-{batch}-{k}", 0, $$"""{"k":{{k}}}""")).ToArray();
                results.AddRange((await server.Alice.PushAsync(d.Batch(mutations))).Results);
            }

            return results;
        })));

        var revisions = responses.SelectMany(r => r).Select(r => r.Revision).ToList();
        Assert.Equal(400, revisions.Count);
        Assert.Equal(400, revisions.Distinct().Count());
        Assert.Equal(400, revisions.Max());
        var pulled = (await server.Alice.PullAllAsync("team:load", limit: 128)).SelectMany(p => p.Changes).ToList();
        Assert.Equal(400, pulled.Count);
    }

    [Fact]
    public async Task A_bulk_push_of_500_new_documents_applies_in_one_request()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        for (var round = 0; round < 4; round++)
        {
            var mutations = Enumerable.Range(0, 500).Select(i => device.Put("team:bulk", "items", $"r{round}-{i}", 0, $$"""{"title":"item {{i}}","done":false,"rank":{{i}}}""")).ToArray();
            var response = await server.Alice.PushAsync(device.Batch(mutations));
            Assert.All(response.Results, r => Assert.Equal(MutationStatus.Applied, r.Status));
        }

        var pages = await server.Alice.PullAllAsync("team:bulk", limit: 5000);
        Assert.Equal(2000, pages.Sum(p => p.Changes.Count));
        Assert.Equal(2000, pages[^1].Cursor);
    }

    [Fact]
    public async Task Pull_limit_above_the_maximum_is_lowered_and_the_default_applies_without_one()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o =>
        {
            o.MaxPullLimit = 7;
            o.DefaultPullLimit = 5;
        });
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch([.. Enumerable.Range(0, 12).Select(i => device.Put("team:1", "x", $"d{i}", 0, """{"a":1}"""))]));

        Assert.Equal(7, (await server.Alice.PullAsync("team:1", 0, 100)).Changes.Count);
        var page = await server.Alice.PullAsync("team:1");
        Assert.Equal(5, page.Changes.Count);
        Assert.True(page.HasMore);
        Assert.Equal(5, page.Cursor);
    }
}
