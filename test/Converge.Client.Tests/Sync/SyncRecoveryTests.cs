using System.Net;
using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Sync;

/// <summary>
/// How a round recovers from what the server decided or refused: writes answered without a new revision, reused
/// mutation ids, forbidden scopes, and a server store restored from a backup.
/// </summary>
public sealed class SyncRecoveryTests : FakeServerTests
{

    private Task<ConvergeClient> OpenAsync(Action<ConvergeClientOptions>? configure = null) => Folder.OpenAsync(FakeServer.Url, configure);

    private static Func<PushRequest, Task<Microsoft.AspNetCore.Http.IResult>> Answer(FakeSyncServer server, MutationStatus status) =>
        request => Task.FromResult(FakeSyncServer.Json(new PushResponse
        {
            Clock = server.Clock,
            Results = request.Mutations.Select(m => new MutationResult { Id = m.Id, Status = status }).ToList(),
        }));

    // ---- results without a new revision ----

    [Fact]
    public async Task A_write_the_server_decided_against_without_a_new_revision_leaves_the_local_value()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        // The client holds B's value (pulled while its own write waited in the outbox) with its write laid on top.
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"title":"from B","n":1}""", 2))], null, 2, false, default);
        await docs.PatchAsync("d", new JsonObject { ["title"] = "from A" });
        Assert.Equal("""{"title":"from A","n":1}""", Inspect.LocalJson(client, "docs", "d"));
        var remote = new List<string?>();
        docs.Changed += (_, e) =>
        {
            if (e.Origin == ChangeOrigin.Remote)
            {
                remote.Add(e.Json?.GetRawText());
            }
        };

        // ServerWins (or a later write under LastWriterWins, or Manual) kept B's value: merged, and no new revision.
        FakeServer.OnPush = Answer(FakeServer, MutationStatus.Merged);
        await client.SyncAsync();

        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Equal("""{"title":"from B","n":1}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Equal(["""{"title":"from B","n":1}"""], remote);
        Assert.Equal(0, Inspect.Count(client, "stale"));
    }

    [Fact]
    public async Task A_duplicate_of_a_write_whose_rejection_was_lost_leaves_the_local_value()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"count":"not a number"}""", 1))], null, 1, false, default);
        await docs.PatchAsync("d", new JsonObject { ["count"] = 3 });

        // The first push was rejected but its response lost; the retry is answered duplicate.
        FakeServer.OnPush = Answer(FakeServer, MutationStatus.Duplicate);
        await client.SyncAsync();

        Assert.Equal("""{"count":"not a number"}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task The_rebuild_waits_for_the_pull_so_a_state_the_pull_brings_shows_without_flicker()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"title":"old"}""", 1))], null, 1, false, default);
        await docs.PatchAsync("d", new JsonObject { ["title"] = "mine" });
        var remote = new List<string?>();
        docs.Changed += (_, e) => remote.Add(e.Json?.GetRawText());

        // The first push applied the write; its response was lost, so the retry is a duplicate, and the pull brings it.
        FakeServer.OnPush = Answer(FakeServer, MutationStatus.Duplicate);
        FakeServer.OnPull = (scope, after, _) => Task.FromResult(FakeSyncServer.Json(scope == "user:alice" && after == 1
            ? FakeServer.Page(scope, 2, changes: [Server.Change("docs", "d", Server.State("""{"title":"mine"}""", 2))])
            : FakeServer.Page(scope, after)));
        await client.SyncAsync();

        Assert.Equal("""{"title":"mine"}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Empty(remote);
    }

    [Fact]
    public async Task A_round_cut_short_after_the_push_rebuilds_at_the_next_pull()
    {
        await using (var client = await OpenAsync())
        {
            var docs = client.Collection<JsonObject>("docs");
            await client.Pages.ApplyAsync("user:alice", [Server.Change("docs", "d", Server.State("""{"title":"from B"}""", 2))], null, 2, false, default);
            await docs.PatchAsync("d", new JsonObject { ["title"] = "from A" });
            FakeServer.OnPush = Answer(FakeServer, MutationStatus.Merged);
            FakeServer.OnPull = (_, _, _) => Task.FromResult(Microsoft.AspNetCore.Http.Results.StatusCode(503));

            await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());
            Assert.Equal(0, await client.GetPendingCountAsync());
            Assert.Equal(1, Inspect.Count(client, "stale"));
        }

        FakeServer.OnPull = null;
        await using (var client = await OpenAsync())
        {
            await client.SyncAsync();
            Assert.Equal("""{"title":"from B"}""", Inspect.LocalJson(client, "docs", "d"));
            Assert.Equal(0, Inspect.Count(client, "stale"));
        }
    }

    // ---- reused mutation ids ----

    [Fact]
    public async Task Reused_mutation_ids_make_the_client_a_new_replica_with_its_outbox_renumbered_and_pushed_again()
    {
        string oldId, newId;
        await using (var client = await OpenAsync())
        {
            var docs = client.Collection<JsonObject>("docs");
            await docs.PutAsync("synced", new JsonObject { ["n"] = 0 });
            await client.SyncAsync();
            oldId = client.ClientId;

            await docs.PutAsync("a", new JsonObject { ["n"] = 1 });
            await docs.PatchAsync("a", new JsonObject { ["m"] = 2 });
            await client.Collection<JsonObject>("docs", "team:42").PutAsync("b", new JsonObject { ["n"] = 3 });
            var written = Inspect.Outbox(client);
            Assert.Equal([2L, 3, 4], written.Select(m => m.Id));

            var refused = false;
            FakeServer.OnPush = async request =>
            {
                if (!refused)
                {
                    refused = true;

                    // A write made while the round runs waits for the next round, renumbered behind the others.
                    await docs.PatchAsync("a", new JsonObject { ["during"] = true });
                    return FakeSyncServer.Problem(409, ProtocolErrorCodes.ClientIdReused);
                }

                return FakeSyncServer.Json(FakeServer.Applied(request));
            };

            var report = await client.SyncAsync();

            newId = client.ClientId;
            Assert.NotEqual(oldId, newId);
            Assert.True(ReplicaId.TryParse(newId, out _));
            var pushes = FakeServer.Pushes.Skip(1).ToList();
            Assert.Equal([oldId, newId], pushes.Select(p => p.ClientId));
            Assert.Equal([2L, 3, 4], pushes[0].Mutations.Select(m => m.Id));
            Assert.Equal([1L, 2, 3], pushes[1].Mutations.Select(m => m.Id));
            Assert.Equal(written.Select(m => (m.DocumentId, m.Kind, m.Hlc, m.Scope)), pushes[1].Mutations.Select(m => (m.DocumentId, m.Kind, m.Hlc, m.Scope)));
            Assert.Equal(3, report.Pushed);
            Assert.Equal(SyncStatus.UpToDate, client.Status);
            var left = Assert.Single(Inspect.Outbox(client));
            Assert.Equal(4, left.Id);
            Assert.True(left.Hlc > written[^1].Hlc);
            Assert.Equal("""{"n":1,"m":2,"during":true}""", Inspect.LocalJson(client, "docs", "a"));
        }

        await using (var client = await OpenAsync())
        {
            Assert.Equal(newId, client.ClientId);
            await client.Collection<JsonObject>("docs").PutAsync("c", new JsonObject { ["n"] = 5 });
            var last = Inspect.Outbox(client)[^1];
            Assert.Equal(5, last.Id);
            Assert.True(ReplicaId.TryParse(newId, out var node));
            Assert.Equal(node, last.Hlc.Node);
        }
    }

    [Fact]
    public async Task A_second_reused_id_answer_in_one_round_is_an_error_and_loses_nothing()
    {
        await using var client = await OpenAsync();
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["n"] = 1 });
        FakeServer.OnPush = _ => Task.FromResult(FakeSyncServer.Problem(409, ProtocolErrorCodes.ClientIdReused));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Equal(ProtocolErrorCodes.ClientIdReused, error.ErrorCode);
        Assert.Equal(2, FakeServer.Pushes.Count);
        Assert.Equal(1, Assert.Single(Inspect.Outbox(client)).Id);
    }

    // ---- forbidden scopes ----

    [Fact]
    public async Task A_scope_refused_for_writing_is_set_aside_and_the_rest_syncs()
    {
        await using var client = await OpenAsync();
        var mine = client.Collection<JsonObject>("docs");
        var team = client.Collection<JsonObject>("docs", "team:42");
        await team.PutAsync("t1", new JsonObject { ["n"] = 1 });
        await mine.PutAsync("m1", new JsonObject { ["n"] = 2 });
        await team.PatchAsync("t1", new JsonObject { ["m"] = 3 });
        await mine.PutAsync("m2", new JsonObject { ["n"] = 4 });
        var written = Inspect.Outbox(client);
        var allowed = false;
        FakeServer.OnPush = request => Task.FromResult(!allowed && request.Mutations.Any(m => m.Scope == "team:42")
            ? FakeSyncServer.Problem(403, ProtocolErrorCodes.ScopeForbidden, "team:42")
            : FakeSyncServer.Json(FakeServer.Applied(request)));
        var pulledTeam = false;
        FakeServer.OnPull = (scope, after, _) =>
        {
            pulledTeam |= scope == "team:42";
            return Task.FromResult(FakeSyncServer.Json(FakeServer.Page(scope, after)));
        };

        var report = await client.SyncAsync();

        Assert.Equal(["team:42"], report.ForbiddenScopes);
        Assert.Equal(2, report.Pushed);
        Assert.Equal([4, 2], FakeServer.Pushes.Select(p => p.Mutations.Count));
        Assert.Equal(["m1", "m2"], FakeServer.Pushes.Last().Mutations.Select(m => m.DocumentId));
        Assert.True(pulledTeam, "a scope refused for writing may still be readable");
        Assert.Equal(SyncStatus.Error, client.Status);
        var error = Assert.IsType<ConvergeSyncException>(client.LastError);
        Assert.Equal((HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden, "team:42"), (error.StatusCode, error.ErrorCode, error.Scope));

        // Set aside behind every id pushed, in their order, with timestamps that grow with the ids.
        var aside = Inspect.Outbox(client);
        Assert.Equal([5L, 6], aside.Select(m => m.Id));
        Assert.Equal(written.Where(m => m.Scope == "team:42").Select(m => (m.DocumentId, m.Kind)), aside.Select(m => (m.DocumentId, m.Kind)));
        Assert.True(aside[0].Hlc > written[^1].Hlc && aside[1].Hlc > aside[0].Hlc);
        Assert.Equal("""{"n":1,"m":3}""", Inspect.LocalJson(client, "docs", "t1", "team:42"));

        // Still refused: they stay set aside. Then granted: they go.
        report = await client.SyncAsync();
        Assert.Equal(["team:42"], report.ForbiddenScopes);
        Assert.Equal(2, await client.GetPendingCountAsync());
        allowed = true;
        report = await client.SyncAsync();
        Assert.Empty(report.ForbiddenScopes);
        Assert.Equal(2, report.Pushed);
        Assert.Equal(0, await client.GetPendingCountAsync());
        Assert.Equal(SyncStatus.UpToDate, client.Status);
        Assert.Null(client.LastError);
    }

    [Fact]
    public async Task A_scope_refused_for_reading_does_not_stop_the_other_scopes()
    {
        await using var client = await Folder.OpenAsync(FakeServer.Url, o =>
        {
            o.Scopes.Clear();
            o.Scopes.Add("team:42");
            o.Scopes.Add("user:alice");
        });
        FakeServer.OnPull = (scope, after, _) => Task.FromResult(scope == "team:42"
            ? FakeSyncServer.Problem(403, ProtocolErrorCodes.ScopeForbidden, scope)
            : FakeSyncServer.Json(FakeServer.Page(scope, 1, changes: [Server.Change("docs", "a", Server.State("""{"x":1}""", 1))])));

        var report = await client.SyncAsync();

        Assert.Equal(["team:42"], report.ForbiddenScopes);
        Assert.Equal(1, report.Pulled);
        Assert.Equal("""{"x":1}""", Inspect.LocalJson(client, "docs", "a", "user:alice"));
        Assert.Equal(SyncStatus.Error, client.Status);
        Assert.Equal("team:42", Assert.IsType<ConvergeSyncException>(client.LastError).Scope);
    }

    [Fact]
    public async Task A_refusal_that_names_no_scope_of_the_batch_still_fails_the_round()
    {
        await using var client = await OpenAsync();
        await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["n"] = 1 });
        FakeServer.OnPush = _ => Task.FromResult(FakeSyncServer.Problem(403, ProtocolErrorCodes.ScopeForbidden));

        var error = await Assert.ThrowsAsync<ConvergeSyncException>(() => client.SyncAsync());

        Assert.Equal(ProtocolErrorCodes.ScopeForbidden, error.ErrorCode);
        Assert.Equal(1, Assert.Single(Inspect.Outbox(client)).Id);
    }

    // ---- epochs ----

    [Fact]
    public async Task A_pull_from_another_epoch_downloads_the_scope_again_and_keeps_the_outbox()
    {
        await using var client = await OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        FakeServer.OnPull = (scope, after, _) => Task.FromResult(FakeSyncServer.Json(scope == "user:alice" && after == 0
            ? FakeServer.Page(scope, 5, epoch: "e1", changes: [Server.Change("docs", "gone", Server.State("""{"x":1}""", 4)), Server.Change("docs", "kept", Server.State("""{"x":2}""", 5))])
            : FakeServer.Page(scope, after, epoch: "e1")));
        await client.SyncAsync();
        Assert.Equal("e1", Inspect.Query(client, "SELECT epoch FROM cursors WHERE scope = 'user:alice';").Single());

        // The server was restored from a backup: its history is another one, whose revisions mean other things.
        FakeServer.OnPull = async (scope, after, _) =>
        {
            if (scope != "user:alice")
            {
                return FakeSyncServer.Json(FakeServer.Page(scope, after, epoch: "e2"));
            }

            if (after == 5)
            {
                // Writes pending while the reset runs stay, on top of whatever the new history holds.
                await docs.PatchAsync("kept", new JsonObject { ["mine"] = true });
                await docs.PatchAsync("gone", new JsonObject { ["mine"] = true });
                return FakeSyncServer.Json(FakeServer.Page(scope, 9, epoch: "e2", changes: [Server.Change("docs", "wrong", Server.State("""{"x":9}""", 9))]));
            }

            return FakeSyncServer.Json(FakeServer.Page(scope, 3, epoch: "e2", changes: [Server.Change("docs", "new", Server.State("""{"x":3}""", 2)), Server.Change("docs", "kept", Server.State("""{"x":7}""", 3))]));
        };
        var removed = new List<string>();
        docs.Changed += (_, e) =>
        {
            if (e.Kind == ChangeKind.Delete)
            {
                removed.Add(e.Id);
            }
        };

        await client.SyncAsync();

        Assert.Equal([("user:alice", 5L), ("user:alice", 0L)], FakeServer.Pulls.Skip(2).Where(p => p.Scope == "user:alice").Select(p => (p.Scope, p.After)));
        Assert.Null(Inspect.LocalJson(client, "docs", "wrong"));
        Assert.Equal("""{"x":3}""", Inspect.LocalJson(client, "docs", "new"));
        Assert.Equal("""{"x":7,"mine":true}""", Inspect.LocalJson(client, "docs", "kept"));
        Assert.Equal((3L, 1), (Inspect.Row(client, "docs", "kept")!.Value.Revision, Inspect.Row(client, "docs", "kept")!.Value.Pending));

        // Kept for its pending write, the document the new history lacks forgets its old server state and revision.
        Assert.Equal(((string?)null, 0L, 1), Inspect.Row(client, "docs", "gone")!.Value);
        Assert.Equal("""{"x":1,"mine":true}""", Inspect.LocalJson(client, "docs", "gone"));
        Assert.Empty(removed);
        Assert.Equal(3, Inspect.Cursor(client, "user:alice"));
        Assert.Equal("e2", Inspect.Query(client, "SELECT epoch FROM cursors WHERE scope = 'user:alice';").Single());

        await docs.PatchAsync("gone", new JsonObject { ["again"] = true });
        Assert.Equal(0, Inspect.Outbox(client)[^1].BaseRevision);
    }

    [Fact]
    public async Task A_cursor_without_an_epoch_takes_the_servers_without_a_reset()
    {
        await using var client = await OpenAsync();
        FakeServer.OnPull = (scope, after, _) => Task.FromResult(FakeSyncServer.Json(after == 0
            ? FakeServer.Page(scope, 2, changes: [Server.Change("docs", "d", Server.State("""{"x":1}""", 2))])
            : FakeServer.Page(scope, after, epoch: "e1")));
        await client.SyncAsync();

        await client.SyncAsync();

        Assert.Equal([0L, 0, 2, 2], FakeServer.Pulls.Select(p => p.After));
        Assert.Equal("""{"x":1}""", Inspect.LocalJson(client, "docs", "d"));
        Assert.Equal(["e1", "e1"], Inspect.Query(client, "SELECT epoch FROM cursors ORDER BY scope;"));
    }
}
