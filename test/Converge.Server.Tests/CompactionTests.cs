using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.Server.Tests;

public class CompactionTests
{
    private const string Scope = "team:c";

    // Keeps the background compaction out of tests that run it by hand while moving the clock by days.
    private static void ByHandOnly(ConvergeServerOptions o) => o.CompactionInterval = TimeSpan.FromDays(40);

    [Fact]
    public async Task Compaction_removes_old_tombstones_and_a_stale_cursor_gets_a_reset_that_pages_to_the_end()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, ByHandOnly);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch([.. Enumerable.Range(0, 10).Select(i => device.Put(Scope, "docs", $"d{i}", 0, $$"""{"i":{{i}}}"""))]));
        var staleCursor = (await server.Alice.PullAsync(Scope)).Cursor; // 10: holds d2 and d5 alive
        await server.Alice.PushAsync(device.Batch(device.Delete(Scope, "docs", "d2", 3), device.Delete(Scope, "docs", "d5", 6)));
        var currentCursor = (await server.Alice.PullAsync(Scope, staleCursor)).Cursor; // 12: saw both deletions
        time.Advance(TimeSpan.FromDays(31));
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "docs", "d10", 0, """{"i":10}"""), device.Delete(Scope, "docs", "d7", 8)));

        var result = await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync();

        // d2 and d5 go; the 7 documents below them that stay move above the new min valid cursor (12), to 15..21.
        Assert.Equal(new Storage.CompactionResult { TombstonesRemoved = 2, ConflictsRemoved = 0, ScopesAffected = 1, ItemsMoved = 7 }, result);
        string[] remaining = ["d10", "d7", "d0", "d1", "d3", "d4", "d6", "d8", "d9"];
        // A client that saw the deletions goes on without a reset; it gets the moved documents again, unchanged.
        var upToDate = await server.Alice.PullAllAsync(Scope, currentCursor);
        Assert.All(upToDate, p => Assert.False(p.Reset));
        Assert.Equal(remaining, upToDate.SelectMany(p => p.Changes).Select(c => c.DocumentId));
        Assert.Equal(3, upToDate.SelectMany(p => p.Changes).Single(c => c.DocumentId == "d3").State.Fields["i"].Value.GetInt32());
        // A client from before them must start over, or it would keep d2 and d5 forever; its download pages to the end.
        var pages = await server.Alice.PullAllAsync(Scope, staleCursor, limit: 3);
        Assert.True(pages[0].Reset);
        Assert.All(pages.Skip(1), p => Assert.False(p.Reset));
        Assert.All(pages, p => Assert.True(p.Cursor > 12));
        Assert.Equal(remaining, pages.SelectMany(p => p.Changes).Select(c => c.DocumentId));
        Assert.Equal(21, pages[^1].Cursor);
        // A new client downloads the same, without a reset.
        var fresh = await server.Alice.PullAllAsync(Scope, 0, limit: 2);
        Assert.All(fresh, p => Assert.False(p.Reset));
        Assert.Equal(remaining, fresh.SelectMany(p => p.Changes).Select(c => c.DocumentId));
        // Compacting again finds nothing new: the last tombstone is younger than the retention.
        Assert.Equal(new Storage.CompactionResult { TombstonesRemoved = 0, ConflictsRemoved = 0, ScopesAffected = 0, ItemsMoved = 0 }, await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync());
        // Writes go on above the moved documents.
        var next = await server.Alice.PushAsync(device.Batch(device.Patch(Scope, "docs", "d0", 15, """{"i":100}""")));
        Assert.Equal(MutationStatus.Applied, next.Results[0].Status);
        Assert.Equal(22, next.Results[0].Revision);
    }

    [Fact]
    public async Task Compaction_of_a_large_scope_works_in_batches_and_keeps_every_item_above_the_min_valid_cursor()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, ByHandOnly);
        var device = new Device(time);
        for (var batch = 0; batch < 3; batch++)
        {
            await server.Alice.PushAsync(device.Batch([.. Enumerable.Range(0, 1000).Select(i => device.Put(Scope, "docs", $"b{batch}-{i}", 0, """{"x":1}"""))]));
        }

        var deletions = Enumerable.Range(0, 1000).Where(i => i % 3 == 0).Select(i => device.Delete(Scope, "docs", $"b2-{i}", 2001 + i)).ToArray();
        await server.Alice.PushAsync(device.Batch(deletions));
        time.Advance(TimeSpan.FromDays(31));

        var result = await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync();

        Assert.Equal(deletions.Length, result.TombstonesRemoved);
        Assert.Equal(3000 - deletions.Length, result.ItemsMoved);
        var pages = await server.Alice.PullAllAsync(Scope, 0, limit: 700);
        var minValid = 3000 + deletions.Length;
        Assert.All(pages, p => Assert.False(p.Reset));
        Assert.All(pages.SelectMany(p => p.Changes), c => Assert.True(c.State.Revision > minValid));
        Assert.Equal(3000 - deletions.Length, pages.SelectMany(p => p.Changes).Select(c => c.DocumentId).Distinct().Count());
        Assert.True((await server.Alice.PullAsync(Scope, minValid - 1)).Reset);
        Assert.False((await server.Alice.PullAsync(Scope, minValid)).Reset);
    }

    [Fact]
    public async Task A_cursor_past_the_scope_revision_gets_a_reset()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "docs", "d", 0, """{"i":1}""")));

        var page = await server.Alice.PullAsync(Scope, 1000);

        Assert.True(page.Reset);
        Assert.Single(page.Changes);
        Assert.Equal(1, page.Cursor);
    }

    [Fact]
    public async Task Resolved_conflicts_are_compacted_after_the_retention_and_open_ones_stay()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o =>
        {
            ByHandOnly(o);
            o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual });
        });
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put(Scope, "notes", "n1", 0, """{"t":"0"}"""), a.Put(Scope, "notes", "n2", 0, """{"t":"0"}""")));
        await server.Alice.PushAsync(a.Batch(a.Patch(Scope, "notes", "n1", 1, """{"t":"a"}"""), a.Patch(Scope, "notes", "n2", 2, """{"t":"a"}""")));
        var conflicts = await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n1", 1, """{"t":"b"}"""), b.Patch(Scope, "notes", "n2", 2, """{"t":"b"}""")));
        await server.Bob.ResolveAsync(conflicts.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "server" });
        time.Advance(TimeSpan.FromDays(31));

        var result = await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync();

        Assert.Equal(new Storage.CompactionResult { TombstonesRemoved = 0, ConflictsRemoved = 1, ScopesAffected = 1, ItemsMoved = 3 }, result); // n1, n2 and the open conflict move above it
        var open = Assert.Single(await server.Bob.ConflictsAsync(Scope));
        Assert.Equal(conflicts.Results[1].ConflictId, open.Id);
        Assert.True((await server.Bob.PullAsync(Scope, 1)).Reset);
    }

    [Fact]
    public async Task The_background_compaction_runs_every_interval_on_the_container_clock()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o =>
        {
            o.CompactionInterval = TimeSpan.FromHours(1);
            o.TombstoneRetention = TimeSpan.FromHours(2);
        });
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "docs", "d", 0, """{"i":1}"""), device.Delete(Scope, "docs", "d", 1)));
        var compactor = server.Services.GetRequiredService<ConvergeCompactor>();
        var runs = new System.Collections.Concurrent.ConcurrentQueue<Storage.CompactionResult>();
        using var completed = new SemaphoreSlim(0);
        compactor.Completed += r =>
        {
            runs.Enqueue(r);
            completed.Release();
        };

        for (var hour = 1; hour <= 3; hour++)
        {
            time.Advance(TimeSpan.FromHours(1));
            Assert.True(await completed.WaitAsync(TimeSpan.FromSeconds(30)), $"No compaction after hour {hour}.");
        }

        var results = runs.ToArray();
        Assert.Equal([0, 0, 1], results.Select(r => r.TombstonesRemoved)); // at 2 hours the tombstone is exactly as old as the retention
        Assert.Empty((await server.Alice.PullAsync(Scope)).Changes);
    }
}
