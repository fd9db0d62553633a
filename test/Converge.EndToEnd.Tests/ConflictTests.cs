using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Protocol.Documents;

namespace Converge.EndToEnd.Tests;

/// <summary>Concurrent edits of one document from two devices, decided by each collection's policy on the server.</summary>
public sealed class ConflictTests
{
    [Theory]
    [InlineData(ConflictPolicy.LastWriterWins, "from B")]
    [InlineData(ConflictPolicy.ServerWins, "from A")]
    [InlineData(ConflictPolicy.ClientWins, "from B")]
    public async Task The_policy_decides_the_contested_field_and_other_fields_merge(ConflictPolicy policy, string expectedTitle)
    {
        await using var server = await SyncServer.StartAsync(Rules.For("todos", policy));
        var (a, b) = await TwoSyncedDevicesAsync(server);

        // Offline, A edits the title and the note; B, later, edits the title and done.
        await a.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "from A", ["note"] = "A's note" });
        await b.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "from B", ["done"] = true });
        await a.SyncAsync();
        await b.SyncAsync();
        await a.SyncAsync();

        foreach (var device in new[] { a, b })
        {
            var t = (await device.Collection<Todo>("todos").GetAsync("t"))!;
            Assert.Equal(expectedTitle, t.Title);
            Assert.Equal("A's note", t.Note);
            Assert.True(t.Done);
            Assert.Empty(await device.Conflicts.ListAsync());
        }
    }

    [Fact]
    public async Task Under_Manual_a_conflict_reaches_every_device_and_a_resolution_syncs_like_a_write()
    {
        await using var server = await SyncServer.StartAsync(Rules.For("todos", ConflictPolicy.Manual));
        var (a, b) = await TwoSyncedDevicesAsync(server);
        var raised = new List<ConflictChangedEventArgs>();
        a.Conflicts.Changed += (_, e) => raised.Add(e);

        await a.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "Plan A" });
        await b.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "Plan B", ["done"] = true });
        await a.SyncAsync();
        var reportB = await b.SyncAsync();
        var reportA = await a.SyncAsync();

        // The non-conflicting field applied; the contested one kept the server's value and waits.
        Assert.Equal(1, reportB.ConflictsOpened);
        Assert.Equal(0, reportB.ConflictsResolved);
        Assert.Equal(1, reportA.ConflictsOpened);
        foreach (var device in new[] { a, b })
        {
            var t = (await device.Collection<Todo>("todos").GetAsync("t"))!;
            Assert.Equal("Plan A", t.Title);
            Assert.True(t.Done);
            var open = Assert.Single(await device.Conflicts.ListAsync());
            var field = Assert.Single(open.Fields);
            Assert.Equal("title", field.Name);
            Assert.Equal("Plan A", field.Server.Value.GetString());
            Assert.Equal("Plan B", field.Client.Value.GetString());
            Assert.Equal("start", field.Base?.GetString());
        }

        Assert.Contains(raised, e => e.Status == InboxConflictStatus.Open);

        // A person on device A merges both plans; the resolution syncs to B.
        var conflict = (await a.Conflicts.ListAsync())[0];
        await a.Conflicts.ResolveAsync(conflict.Id, new JsonObject { ["title"] = "Plan A+B" });
        Assert.Equal("Plan A+B", (await a.Collection<Todo>("todos").GetAsync("t"))!.Title);
        var resolvedOnA = await a.SyncAsync();
        var resolvedOnB = await b.SyncAsync();

        // Both devices report the conflict as resolved, and neither as a new one.
        foreach (var report in new[] { resolvedOnA, resolvedOnB })
        {
            Assert.Equal(0, report.ConflictsOpened);
            Assert.Equal(1, report.ConflictsResolved);
        }

        Assert.Equal("Plan A+B", (await b.Collection<Todo>("todos").GetAsync("t"))!.Title);
        foreach (var device in new[] { a, b })
        {
            Assert.DoesNotContain(await device.Conflicts.ListAsync(), c => c.Status == InboxConflictStatus.Open);
        }
    }

    [Fact]
    public async Task Increments_from_two_devices_add_up()
    {
        await using var server = await SyncServer.StartAsync();
        var (a, b) = await TwoSyncedDevicesAsync(server);
        for (var i = 0; i < 10; i++)
        {
            await a.Collection<Todo>("todos").IncrementAsync("t", "count", 1);
            await b.Collection<Todo>("todos").IncrementAsync("t", "count", 2);
        }

        await a.SyncAsync();
        await b.SyncAsync();
        await a.SyncAsync();

        Assert.Equal(30, (await a.Collection<Todo>("todos").GetAsync("t"))!.Count);
        Assert.Equal(30, (await b.Collection<Todo>("todos").GetAsync("t"))!.Count);
    }

    [Fact]
    public async Task A_delete_wins_over_a_concurrent_edit_by_default()
    {
        await using var server = await SyncServer.StartAsync();
        var (a, b) = await TwoSyncedDevicesAsync(server);
        await b.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "edited" });
        await a.Collection<Todo>("todos").DeleteAsync("t");
        await b.SyncAsync();
        var report = await a.SyncAsync();
        await b.SyncAsync();

        Assert.Null(await a.Collection<Todo>("todos").GetAsync("t"));
        Assert.Null(await b.Collection<Todo>("todos").GetAsync("t"));
        Assert.Empty(report.Rejected);
    }

    [Fact]
    public async Task Remote_changes_raise_change_events_with_a_remote_origin()
    {
        await using var server = await SyncServer.StartAsync();
        var (a, b) = await TwoSyncedDevicesAsync(server);
        var seen = new List<DocumentChangedEventArgs<Todo>>();
        b.Collection<Todo>("todos").Changed += (_, e) => seen.Add(e);

        await a.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["done"] = true });
        await a.SyncAsync();
        await b.SyncAsync();

        var change = Assert.Single(seen);
        Assert.Equal(ChangeOrigin.Remote, change.Origin);
        Assert.Equal("t", change.Id);
        Assert.True(change.Value!.Done);
    }

    private static async Task<(ConvergeClient A, ConvergeClient B)> TwoSyncedDevicesAsync(SyncServer server)
    {
        // B's clock runs one second ahead of A's (well within the drift bound), so B's later edits also carry later
        // timestamps even when both land in the same millisecond.
        var a = await server.OpenClientAsync("a");
        var b = await server.OpenClientAsync("b", configure: o => o.TimeProvider = new OffsetTimeProvider(TimeSpan.FromSeconds(1)));
        await a.Collection<Todo>("todos").PutAsync("t", new Todo { Title = "start" });
        await a.SyncAsync();
        await b.SyncAsync();
        return (a, b);
    }

    private sealed class OffsetTimeProvider(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
    }
}
