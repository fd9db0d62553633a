using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Http;

namespace Converge.Client.Tests.Sync;

public sealed class SyncTests : FakeServerTests
{

    private Task<ConvergeClient> OpenAsync(Action<ConvergeClientOptions>? configure = null) => Folder.OpenAsync(FakeServer.Url, configure);

    [Fact]
    public async Task Push_sends_the_outbox_in_batches_in_mutation_order_and_empties_it()
    {
        await using var client = await OpenAsync(o => o.PushBatchSize = 3);
        var docs = client.Collection<JsonObject>("docs");
        for (var i = 0; i < 7; i++)
        {
            await docs.PatchAsync($"d{i % 2}", new JsonObject { ["n"] = i });
        }

        var report = await client.SyncAsync();

        var pushes = FakeServer.Pushes.ToList();
        Assert.Equal([3, 3, 1], pushes.Select(p => p.Mutations.Count));
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), pushes.SelectMany(p => p.Mutations).Select(m => m.Id));
        Assert.All(pushes, p => Assert.Equal(client.ClientId, p.ClientId));
        Assert.Equal(7, report.Pushed);
        Assert.Empty(report.Rejected);
        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Equal(0, Inspect.Row(client, "docs", "d0")!.Value.Pending);
        Assert.Equal(SyncStatus.UpToDate, client.Status);
        Assert.Null(client.LastError);
    }

    [Fact]
    public async Task PendingChanged_and_Synced_tell_a_screen_when_the_outbox_and_the_last_sync_change()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var client = await OpenAsync(o => o.TimeProvider = time);
        var pending = 0;
        var synced = 0;
        client.PendingChanged += (_, _) => pending++;
        client.Synced += (_, _) => synced++;
        Assert.Null(client.LastSyncedAt);

        await client.Collection<JsonObject>("docs").PutAsync("d", new JsonObject { ["n"] = 1 });
        Assert.Equal(1, pending);
        Assert.Equal(0, synced);

        await client.SyncAsync();

        // The push emptied the outbox, and the round's end is the last sync.
        Assert.Equal(2, pending);
        Assert.Equal(1, synced);
        Assert.Equal(time.GetUtcNow(), client.LastSyncedAt);
        Assert.Equal(0, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_push_that_fails_after_an_answered_one_leaves_exactly_the_unanswered_batches_and_the_next_round_sends_them_in_order()
    {
        await using var client = await OpenAsync(o => o.PushBatchSize = 2);
        var docs = client.Collection<JsonObject>("docs");
        for (var i = 0; i < 6; i++)
        {
            await docs.PutAsync($"d{i}", new JsonObject { ["n"] = i });
        }

        // The second push leaves while the first one's answer is being stored; it fails.
        var calls = 0;
        FakeServer.OnPush = request => Task.FromResult(Interlocked.Increment(ref calls) == 2 ? Results.StatusCode(503) : FakeSyncServer.Json(FakeServer.Applied(request)));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Equal(HttpStatusCode.ServiceUnavailable, error.StatusCode);
        Assert.Equal(2, calls);
        Assert.Equal(4, await client.GetPendingCountAsync());
        Assert.Equal(0, Inspect.Row(client, "docs", "d1")!.Value.Pending);
        Assert.Equal(1, Inspect.Row(client, "docs", "d2")!.Value.Pending);

        FakeServer.OnPush = null;
        var report = await client.SyncAsync();

        Assert.Equal(4, report.Pushed);
        Assert.Equal([1L, 2, 3, 4, 3, 4, 5, 6], FakeServer.Pushes.SelectMany(p => p.Mutations).Select(m => m.Id));
        Assert.Equal(1, FakeServer.MaxConcurrent);
        Assert.Equal(0, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task Every_result_drops_its_mutation_and_a_rejection_rebuilds_the_document_without_it()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "kept", Server.State("""{"v":"server"}""", 1))], null, 1, false, default);
        await docs.PutAsync("applied", new JsonObject { ["v"] = 1 });
        await docs.PutAsync("merged", new JsonObject { ["v"] = 1 });
        await docs.PutAsync("conflict", new JsonObject { ["v"] = 1 });
        await docs.PutAsync("rejected", new JsonObject { ["v"] = 1 });
        await docs.PatchAsync("kept", new JsonObject { ["v"] = "refused edit" });
        await docs.PutAsync("duplicate", new JsonObject { ["v"] = 1 });
        var restamp = new HybridTimestamp(1_700_000_000_500, 0, 0x5e);
        FakeServer.OnPush = request => Task.FromResult(FakeSyncServer.Json(new PushResponse
        {
            Clock = FakeServer.Clock,
            Results =
            [
                new MutationResult { Id = 1, Status = MutationStatus.Applied, Revision = 2, Restamped = restamp },
                new MutationResult { Id = 2, Status = MutationStatus.Merged, Revision = 3, Reason = "kept the server's" },
                new MutationResult { Id = 3, Status = MutationStatus.Conflict, Revision = 4, ConflictId = "c9" },
                new MutationResult { Id = 4, Status = MutationStatus.Rejected, Reason = "not allowed" },
                new MutationResult { Id = 5, Status = MutationStatus.Rejected, Reason = "read-only field" },
                new MutationResult { Id = 6, Status = MutationStatus.Duplicate },
            ],
        }));
        var remote = new List<(string, ChangeKind)>();
        docs.Changed += (_, e) =>
        {
            if (e.Origin == ChangeOrigin.Remote)
            {
                remote.Add((e.Id, e.Kind));
            }
        };

        var report = await client.SyncAsync();

        Assert.Equal(6, report.Pushed);
        Assert.Equal(1, report.Restamped);
        Assert.Equal([(4L, "rejected", "not allowed"), (5L, "kept", "read-only field")], report.Rejected.Select(r => (r.MutationId, r.DocumentId, r.Reason)));
        Assert.Equal(MutationKind.Patch, report.Rejected[1].Kind);
        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Null(Inspect.LocalJson(client, "docs", "rejected"));
        Assert.Null(Inspect.Row(client, "docs", "rejected"));
        Assert.Equal("""{"v":"server"}""", Inspect.LocalJson(client, "docs", "kept"));
        Assert.Equal("""{"v":1}""", Inspect.LocalJson(client, "docs", "applied"));

        // A rejection is rebuilt with the push's results; a result without a new revision (the duplicate, whose first
        // push's outcome is unknown) once the pull is done, from the server state the client holds: here, none.
        Assert.Null(Inspect.LocalJson(client, "docs", "duplicate"));
        Assert.Equal([("rejected", ChangeKind.Delete), ("kept", ChangeKind.Put), ("duplicate", ChangeKind.Delete)], remote);
    }

    [Fact]
    public async Task Pull_follows_pages_to_the_end_and_the_cursor_survives_rounds_and_restarts()
    {
        FakeServer.OnPull = (scope, after, limit) => Task.FromResult(FakeSyncServer.Json((scope, after) switch
        {
            ("user:alice", 0) => FakeServer.Page(scope, 2, hasMore: true, changes: [Server.Change("docs", "a", Server.State("""{"x":1}""", 1)), Server.Change("docs", "b", Server.State("""{"x":2}""", 2))]),
            ("user:alice", 2) => FakeServer.Page(scope, 3, changes: [Server.Change("notes", "n", Server.State("""{"t":"hi"}""", 3))]),
            ("team:42", 0) => FakeServer.Page(scope, 9, changes: [Server.Change("docs", "t", Server.State("""{"team":true}""", 9))]),
            _ => FakeServer.Page(scope, after),
        }));
        var progress = new List<SyncProgress>();

        await using (var client = await OpenAsync(o => o.PullPageSize = 2))
        {
            var report = await client.SyncAsync(new SyncProgressRecorder(progress));

            Assert.Equal(4, report.Pulled);
            Assert.Equal([("user:alice", 0L, 2), ("user:alice", 2L, 2), ("team:42", 0L, 2)], FakeServer.Pulls.ToList());
            Assert.Equal("""{"x":2}""", Inspect.LocalJson(client, "docs", "b"));
            Assert.Equal("""{"t":"hi"}""", Inspect.LocalJson(client, "notes", "n"));
            Assert.Equal("""{"team":true}""", Inspect.LocalJson(client, "docs", "t", "team:42"));
            Assert.Equal((3L, 9L), (Inspect.Cursor(client, "user:alice"), Inspect.Cursor(client, "team:42")));
            Assert.Equal([SyncPhase.Pull, SyncPhase.Pull, SyncPhase.Pull], progress.Select(p => p.Phase));
            Assert.Equal([2, 3, 4], progress.Select(p => p.Pulled));

            await client.SyncAsync();
        }

        await using (var client = await OpenAsync(o => o.PullPageSize = 2))
        {
            await client.SyncAsync();
        }

        Assert.Equal([("user:alice", 3L), ("team:42", 9L), ("user:alice", 3L), ("team:42", 9L)], FakeServer.Pulls.Skip(3).Select(p => (p.Scope, p.After)).ToList());
    }

    [Fact]
    public async Task A_reset_page_drops_settled_documents_and_keeps_pending_ones()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "old", Server.State("""{"a":1}""", 4)), Server.Change("docs", "mine", Server.State("""{"a":1}""", 5))], null, 5, false, default);
        await docs.PutAsync("pushed", new JsonObject { ["p"] = 1 });
        FakeServer.OnPush = async request =>
        {
            // A write made while the round runs stays pending through the pull.
            await docs.PatchAsync("mine", new JsonObject { ["b"] = 2 });
            return FakeSyncServer.Json(FakeServer.Applied(request));
        };
        FakeServer.OnPull = (scope, after, _) => Task.FromResult(FakeSyncServer.Json(scope == "user:alice" && after == 5
            ? FakeServer.Page(scope, 30, reset: true, changes: [Server.Change("docs", "mine", Server.State("""{"a":7}""", 30))])
            : FakeServer.Page(scope, after)));

        await client.SyncAsync();

        Assert.Null(Inspect.LocalJson(client, "docs", "old"));
        Assert.Null(Inspect.LocalJson(client, "docs", "pushed"));
        Assert.Equal("""{"a":7,"b":2}""", Inspect.LocalJson(client, "docs", "mine"));
        Assert.Equal(MutationKind.Patch, Assert.Single(Inspect.Outbox(client)).Kind);
        Assert.Equal(30, Inspect.Cursor(client, "user:alice"));
    }

    [Fact]
    public async Task The_access_token_goes_as_a_bearer_on_every_request()
    {
        var calls = 0;
        await using var client = await OpenAsync(o => o.AccessTokenProvider = _ => ValueTask.FromResult<string?>("token-" + Interlocked.Increment(ref calls)));
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["x"] = 1 });

        await client.SyncAsync();

        Assert.Equal(["Bearer token-1", "Bearer token-2", "Bearer token-3"], FakeServer.Authorizations.ToList());
    }

    [Fact]
    public async Task Nothing_listening_means_offline_and_local_writes_go_on()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        await using var client = await Folder.OpenAsync(new Uri($"http://127.0.0.1:{port}/"));
        var statuses = new List<SyncStatus>();
        client.StatusChanged += (_, e) => statuses.Add(e.Status);
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("a", new JsonObject { ["x"] = 1 });

        await Assert.ThrowsAsync<HttpRequestException>(() => client.SyncAsync());

        Assert.Equal(SyncStatus.Offline, client.Status);
        Assert.IsType<HttpRequestException>(client.LastError);
        Assert.Equal([SyncStatus.Syncing, SyncStatus.Offline], statuses);
        await docs.PatchAsync("a", new JsonObject { ["y"] = 2 });
        Assert.Equal(2, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_server_error_means_error_and_the_next_good_round_is_up_to_date()
    {
        await using var client = await OpenAsync();
        var statuses = new List<(SyncStatus, Exception?)>();
        client.StatusChanged += (_, e) => statuses.Add((e.Status, e.Error));
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["x"] = 1 });
        FakeServer.OnPush = _ => Task.FromResult(Results.StatusCode(500));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Equal(SyncStatus.Error, client.Status);
        Assert.Same(error, client.LastError);
        Assert.Equal(1, await client.GetPendingCountAsync());

        FakeServer.OnPush = null;
        await client.SyncAsync();

        Assert.Equal(SyncStatus.UpToDate, client.Status);
        Assert.Null(client.LastError);
        Assert.Equal([SyncStatus.Syncing, SyncStatus.Error, SyncStatus.Syncing, SyncStatus.UpToDate], statuses.Select(s => s.Item1));
        Assert.Same(error, statuses[1].Item2);
    }

    [Fact]
    public async Task A_problem_response_gives_its_code()
    {
        await using var client = await OpenAsync();
        FakeServer.OnPull = (_, _, _) => Task.FromResult(FakeSyncServer.Problem(401, ProtocolErrorCodes.Unauthenticated));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Equal((HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated), (error.StatusCode, error.ErrorCode));
        Assert.Equal(SyncStatus.Error, client.Status);
    }

    [Fact]
    public async Task A_page_of_another_scope_is_a_protocol_error_and_nothing_is_applied()
    {
        await using var client = await OpenAsync();
        FakeServer.OnPull = (_, after, _) => Task.FromResult(FakeSyncServer.Json(FakeServer.Page("team:42", after + 1, changes: [Server.Change("docs", "x", Server.State("{}", 1))])));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Null(error.StatusCode);
        Assert.Equal(SyncStatus.Error, client.Status);
        Assert.Equal(0, Inspect.Count(client, "documents"));
    }

    [Fact]
    public async Task Concurrent_rounds_never_overlap_and_a_late_call_pushes_what_came_before_it()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("a", new JsonObject { ["x"] = 1 });
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FakeServer.OnPush = async request =>
        {
            if (FakeServer.Pushes.Count == 1)
            {
                entered.SetResult();
                await release.Task;
            }

            return FakeSyncServer.Json(FakeServer.Applied(request));
        };

        var first = client.SyncAsync();
        await Wait.For(entered.Task);
        await docs.PutAsync("b", new JsonObject { ["x"] = 2 });
        var second = client.SyncAsync();
        Assert.False(second.IsCompleted);
        release.SetResult();
        var reports = await Wait.For(Task.WhenAll(first, second));

        Assert.Equal(1, FakeServer.MaxConcurrent);
        Assert.Equal([1, 1], reports.Select(r => r.Pushed));
        Assert.Equal([1L, 2L], FakeServer.Pushes.Select(p => p.Mutations.Single().Id));
        Assert.Equal(0, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_batch_the_server_finds_too_large_is_split_until_it_fits()
    {
        await using var client = await OpenAsync(o => o.PushBatchSize = 5);
        var docs = client.Collection<JsonObject>("docs");
        for (var i = 0; i < 5; i++)
        {
            await docs.PutAsync($"d{i}", new JsonObject { ["n"] = i });
        }

        FakeServer.OnPush = request => Task.FromResult(request.Mutations.Count > 2
            ? FakeSyncServer.Problem(413, ProtocolErrorCodes.BatchTooLarge)
            : FakeSyncServer.Json(FakeServer.Applied(request)));

        var report = await client.SyncAsync();

        Assert.Equal(5, report.Pushed);
        Assert.Equal([5, 2, 2, 1], FakeServer.Pushes.Select(p => p.Mutations.Count));
        Assert.Equal(0, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task A_mutation_the_server_refuses_alone_is_dropped_as_rejected_instead_of_blocking_the_outbox()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("good", new JsonObject { ["n"] = 1 });
        await docs.PutAsync("bad", new JsonObject { ["n"] = 2 });
        FakeServer.OnPush = request => Task.FromResult(request.Mutations.Any(m => m.DocumentId == "bad")
            ? FakeSyncServer.Problem(400, ProtocolErrorCodes.InvalidMessage)
            : FakeSyncServer.Json(FakeServer.Applied(request)));

        var report = await client.SyncAsync();

        Assert.Equal(2, report.Pushed);
        Assert.Equal("bad", Assert.Single(report.Rejected).DocumentId);
        Assert.Contains("invalid_message", report.Rejected[0].Reason, StringComparison.Ordinal);
        Assert.Null(Inspect.LocalJson(client, "docs", "bad"));
        Assert.Equal(0, await client.GetPendingCountAsync());
    }

    [Fact]
    public async Task The_server_clock_is_taken_in_however_far_ahead_it_is()
    {
        await using var client = await OpenAsync();
        var future = new HybridTimestamp(DateTimeOffset.UtcNow.AddYears(5).ToUnixTimeMilliseconds(), 3, 0x5e);
        FakeServer.Clock = future;

        await client.SyncAsync();
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["x"] = 1 });

        Assert.True(Inspect.Outbox(client).Single().Hlc > future);
    }

    [Fact]
    public async Task A_rejected_resolution_reopens_the_conflict()
    {
        await using var client = await OpenAsync();
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"t":"s"}""", 1))], [Server.Conflict("c1", "user:alice", "docs", "d", 2, ("t", "\"s\"", "\"c\""))], 2, false, default);
        await client.Conflicts.ResolveAsync("c1", ConflictChoice.Mine);
        FakeServer.OnPush = request => Task.FromResult(FakeSyncServer.Json(new PushResponse
        {
            Clock = FakeServer.Clock,
            Results = [new MutationResult { Id = request.Mutations[0].Id, Status = MutationStatus.Rejected, Reason = "no" }],
        }));
        var statuses = new List<InboxConflictStatus>();
        client.Conflicts.Changed += (_, e) => statuses.Add(e.Status);

        await client.SyncAsync();

        Assert.Equal(InboxConflictStatus.Open, Assert.Single(await client.Conflicts.ListAsync()).Status);
        Assert.Equal([InboxConflictStatus.Open], statuses);
        Assert.Equal("""{"t":"s"}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task A_client_without_a_server_refuses_to_sync()
    {
        await using var client = await Folder.OpenAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => client.SyncAsync());
        Assert.Equal(SyncStatus.Offline, client.Status);
    }

    [Fact]
    public async Task A_cancelled_round_restores_the_status_and_keeps_the_outbox()
    {
        await using var client = await OpenAsync();
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["x"] = 1 });
        using var cts = new CancellationTokenSource();
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FakeServer.OnPush = async request =>
        {
            await cts.CancelAsync();
            await hold.Task;
            return FakeSyncServer.Json(FakeServer.Applied(request));
        };

        try
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.SyncAsync(cancellationToken: cts.Token));
        }
        finally
        {
            hold.SetResult();
        }

        Assert.Equal(SyncStatus.Offline, client.Status);
        Assert.Equal(1, await client.GetPendingCountAsync());
    }

    private sealed class SyncProgressRecorder(List<SyncProgress> list) : IProgress<SyncProgress>
    {
        public void Report(SyncProgress value) => list.Add(value);
    }
}
