using Converge.Tests.Shared;
using System.Net;
using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Converge.EndToEnd.Tests;

/// <summary>Lost responses, killed devices, long absences, foreign scopes and wrong clocks: nothing acknowledged is lost, nothing applies twice.</summary>
public sealed class FaultTests
{
    [Fact]
    public async Task A_push_retried_after_a_lost_response_is_applied_once()
    {
        await using var server = await SyncServer.StartAsync();
        var lose = new LoseFirstPushResponse();
        var a = await server.OpenClientAsync("a", configure: o => o.HttpMessageHandler = lose);
        var counters = a.Collection<JsonObject>("counters");
        await counters.IncrementAsync("c1", "n", 5);
        await counters.IncrementAsync("c1", "n", 2);

        await Assert.ThrowsAsync<HttpRequestException>(() => a.SyncAsync());
        Assert.True(lose.Lost, "the first push reached the server and its response was lost");
        Assert.Equal(SyncStatus.Offline, a.Status);
        Assert.Equal(2, await a.GetPendingCountAsync());

        await a.SyncAsync();
        Assert.Equal(0, await a.GetPendingCountAsync());

        var b = await server.OpenClientAsync("b");
        await b.SyncAsync();
        Assert.Equal(7, (await b.Collection<JsonObject>("counters").GetAsync("c1"))!["n"]!.GetValue<long>());
        Assert.Equal(7, (await counters.GetAsync("c1"))!["n"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_device_killed_between_local_writes_and_push_loses_nothing_and_converges_after_restart()
    {
        await using var server = await SyncServer.StartAsync();
        var db = Path.Combine(server.Folder, "killed.db");
        using (var child = CrashChild.Start("Converge.EndToEnd.CrashChild.dll", db, server.Address.ToString(), SyncServer.AllScopesKey, "s1", "200"))
        {
            Assert.Equal("written 200", await child.WaitForLineAsync("written"));
            await child.KillAsync();
        }

        var restarted = await server.OpenClientAsync("killed");
        Assert.Equal(200, await restarted.GetPendingCountAsync());
        var report = await restarted.SyncAsync();
        Assert.Equal(200, report.Pushed);

        var other = await server.OpenClientAsync("other");
        await other.SyncAsync();
        var notes = await other.Collection<JsonObject>("notes").Query().Limit(1000).ToListAsync();
        Assert.Equal(200, notes.Count);
        Assert.Equal(Enumerable.Range(0, 200), notes.Select(n => n["n"]!.GetValue<int>()).Order());
        Assert.Equal("written offline 199", (await restarted.Collection<JsonObject>("notes").GetAsync("n0199"))!["title"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_device_offline_past_the_retention_resets_and_keeps_its_own_writes()
    {
        var time = new FakeTimeProvider(TimeProvider.System.GetUtcNow());
        await using var server = await SyncServer.StartAsync(
            o =>
            {
                o.TombstoneRetention = TimeSpan.FromDays(1);
                o.CompactionInterval = TimeSpan.FromDays(40); // longer than the test advances: it compacts by itself
            },
            time);
        var pullGate = new BeforePull();
        var a = await server.OpenClientAsync("a");
        var b = await server.OpenClientAsync("b", configure: o => o.HttpMessageHandler = pullGate);
        var todosA = a.Collection<Todo>("todos");
        var todosB = b.Collection<Todo>("todos");
        foreach (var id in new[] { "t1", "t2", "t3" })
        {
            await todosA.PutAsync(id, new Todo { Title = id });
        }

        await a.SyncAsync();
        await b.SyncAsync();

        // B goes away; A deletes t2 and edits t3; the tombstone outlives the retention and is compacted.
        await todosA.DeleteAsync("t2");
        await todosA.PatchAsync("t3", new JsonObject { ["done"] = true });
        await a.SyncAsync();
        time.Advance(TimeSpan.FromDays(2));
        var compaction = await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync();
        Assert.True(compaction.TombstonesRemoved >= 1, "the tombstone of t2 was compacted");

        // Meanwhile B edited t1 offline; and while its pull runs (its push is done), it edits t3: that write is
        // pending in the outbox while the reset drops B's copy of the scope.
        await todosB.PatchAsync("t1", new JsonObject { ["title"] = "edited on B while away" });
        pullGate.BeforeFirstPull = () => todosB.PatchAsync("t3", new JsonObject { ["note"] = "written during the reset" });
        await b.SyncAsync();

        // t2's tombstone is gone from the server, so only a reset can have removed it from B.
        Assert.Null(await todosB.GetAsync("t2"));
        Assert.True((await todosB.GetAsync("t3"))!.Done);
        Assert.Equal("written during the reset", (await todosB.GetAsync("t3"))!.Note);
        Assert.Equal("edited on B while away", (await todosB.GetAsync("t1"))!.Title);
        Assert.Equal(1, await b.GetPendingCountAsync());

        await b.SyncAsync();
        await a.SyncAsync();
        Assert.Equal(0, await b.GetPendingCountAsync());
        Assert.Equal("edited on B while away", (await todosA.GetAsync("t1"))!.Title);
        Assert.Equal("written during the reset", (await todosA.GetAsync("t3"))!.Note);
        Assert.True((await todosA.GetAsync("t3"))!.Done);
    }

    [Fact]
    public async Task A_device_asking_for_a_scope_its_key_does_not_grant_is_refused_and_changes_nothing()
    {
        await using var server = await SyncServer.StartAsync();
        var intruder = await server.OpenClientAsync("intruder", scope: "s-private", key: SyncServer.ScopeAKey);
        await intruder.Collection<Todo>("todos").PutAsync("x", new Todo { Title = "planted" });

        // The refused scope does not fail the round: it is reported, and its write waits in the outbox.
        var refused = await intruder.SyncAsync();
        Assert.Equal(["s-private"], refused.ForbiddenScopes);
        Assert.Equal(SyncStatus.Error, intruder.Status);
        var error = Assert.IsType<ConvergeSyncException>(intruder.LastError);
        Assert.Equal("scope_forbidden", error.ErrorCode);
        Assert.Equal(HttpStatusCode.Forbidden, error.StatusCode);
        Assert.Equal("s-private", error.Scope);
        Assert.Equal(1, await intruder.GetPendingCountAsync());

        var owner = await server.OpenClientAsync("owner", scope: "s-private");
        var report = await owner.SyncAsync();
        Assert.Equal(0, report.Pulled);
        Assert.Null(await owner.Collection<Todo>("todos").GetAsync("x"));
    }

    [Fact]
    public async Task A_device_whose_clock_says_2099_does_not_win_a_later_edit()
    {
        await using var server = await SyncServer.StartAsync();
        var future = new FakeTimeProvider(new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var a = await server.OpenClientAsync("a", configure: o => o.TimeProvider = future);
        var b = await server.OpenClientAsync("b");
        await b.Collection<Todo>("todos").PutAsync("t", new Todo { Title = "start" });
        await b.SyncAsync();
        await a.SyncAsync();

        await a.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "from 2099" });
        var report = await a.SyncAsync();
        Assert.Equal(1, report.Restamped);

        // B edits the same field afterwards without having seen A's edit: a concurrent edit with a present-day clock.
        await b.Collection<Todo>("todos").PatchAsync("t", new JsonObject { ["title"] = "from today" });
        await b.SyncAsync();
        await a.SyncAsync();

        Assert.Equal("from today", (await a.Collection<Todo>("todos").GetAsync("t"))!.Title);
        Assert.Equal("from today", (await b.Collection<Todo>("todos").GetAsync("t"))!.Title);
    }

    [Fact]
    public async Task Writes_made_while_the_server_is_down_sync_once_it_is_back()
    {
        await using var server = await SyncServer.StartAsync();
        var a = await server.OpenClientAsync("a");
        await server.StopAsync();

        await a.Collection<Todo>("todos").PutAsync("t", new Todo { Title = "offline" });
        await Assert.ThrowsAnyAsync<Exception>(() => a.SyncAsync());
        Assert.Equal(SyncStatus.Offline, a.Status);
        Assert.Equal("offline", (await a.Collection<Todo>("todos").GetAsync("t"))!.Title);

        await server.RestartAsync();
        var restartedA = await server.OpenClientAsync("a2");
        await a.SyncAsync();
        Assert.Equal(SyncStatus.UpToDate, a.Status);
        await restartedA.SyncAsync();
        Assert.Equal("offline", (await restartedA.Collection<Todo>("todos").GetAsync("t"))!.Title);
    }

    /// <summary>Runs an action once, just before the next pull request leaves, after the round's push is done.</summary>
    private sealed class BeforePull() : DelegatingHandler(new SocketsHttpHandler())
    {
        public Func<Task>? BeforeFirstPull { get; set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.AbsolutePath.EndsWith("/pull", StringComparison.Ordinal) && BeforeFirstPull is { } action)
            {
                BeforeFirstPull = null;
                await action();
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Lets the first push reach the server, then throws as if the connection dropped before the response.</summary>
    private sealed class LoseFirstPushResponse() : DelegatingHandler(new SocketsHttpHandler())
    {
        public bool Lost { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (!Lost && request.RequestUri!.AbsolutePath.EndsWith("/push", StringComparison.Ordinal) && response.StatusCode == HttpStatusCode.OK)
            {
                Lost = true;
                response.Dispose();
                throw new HttpRequestException("The connection dropped before the response arrived.");
            }

            return response;
        }
    }
}
