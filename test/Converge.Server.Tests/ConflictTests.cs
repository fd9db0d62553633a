using System.Net;
using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

public class ConflictTests
{
    private const string Scope = "team:7";

    /// <summary>Creates a note at revision 1, then has two devices edit its title concurrently from that revision: first A, then B.</summary>
    private static async Task<(PushResponse A, PushResponse B)> ConcurrentTitlesAsync(TestServer server, Device a, Device b, string collection)
    {
        await server.Alice.PushAsync(a.Batch(a.Put(Scope, collection, "n", 0, """{"title":"original","body":"text"}""")));
        var fromA = a.Patch(Scope, collection, "n", 1, """{"title":"from A"}""");
        var fromB = b.Patch(Scope, collection, "n", 1, """{"title":"from B","body":"B body"}""");
        var pushA = await server.Alice.PushAsync(a.Batch(fromA));
        var pushB = await server.Bob.PushAsync(b.Batch(fromB));
        return (pushA, pushB);
    }

    private static async Task<DocumentState> DocumentAsync(TestServer server, string collection, string id = "n") =>
        (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Changes).Last(c => c.Collection == collection && c.DocumentId == id).State;

    [Fact]
    public async Task Last_writer_wins_keeps_the_higher_timestamp_per_field()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put(Scope, "notes", "n", 0, """{"title":"original"}""")));
        var late = b.Patch(Scope, "notes", "n", 1, """{"title":"later edit"}""");
        var past = new Device(new Microsoft.Extensions.Time.Testing.FakeTimeProvider(Times.Start - TimeSpan.FromSeconds(5)));
        var early = past.Patch(Scope, "notes", "n", 1, """{"title":"earlier edit"}"""); // made earlier, arrives last

        var first = await server.Bob.PushAsync(b.Batch(late));
        var second = await server.Alice.PushAsync(past.Batch(early));

        Assert.Equal(MutationStatus.Applied, first.Results[0].Status);
        Assert.Equal(MutationStatus.Merged, second.Results[0].Status);
        Assert.Equal(0, second.Results[0].Revision);
        Assert.Equal("later edit", (await DocumentAsync(server, "notes")).Fields["title"].Value.GetString());
    }

    [Fact]
    public async Task Server_wins_keeps_the_server_value_of_a_contested_field_and_merges_the_rest()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.ServerWins }));
        var (_, pushB) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "notes");

        Assert.Equal(MutationStatus.Merged, pushB.Results[0].Status);
        var state = await DocumentAsync(server, "notes");
        Assert.Equal("from A", state.Fields["title"].Value.GetString());
        Assert.Equal("B body", state.Fields["body"].Value.GetString());
    }

    [Fact]
    public async Task Client_wins_takes_the_incoming_value()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.ClientWins }));
        var (_, pushB) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "notes");

        Assert.Equal(MutationStatus.Applied, pushB.Results[0].Status);
        var state = await DocumentAsync(server, "notes");
        Assert.Equal("from B", state.Fields["title"].Value.GetString());
        Assert.Equal("B body", state.Fields["body"].Value.GetString());
    }

    [Fact]
    public async Task Custom_policy_asks_the_resolver_and_a_throwing_resolver_rejects_only_its_mutation()
    {
        var time = Times.NewFake();
        CustomConflict? seen = null;
        await using var server = await TestServer.StartAsync(time, o =>
        {
            o.Collection("notes", new CollectionRules
            {
                Policy = ConflictPolicy.Custom,
                Resolver = conflict =>
                {
                    seen = conflict;
                    var f = conflict.Fields.Single();
                    return new Dictionary<string, JsonElement> { [f.Name] = JsonSerializer.SerializeToElement($"{f.Server!.Value.GetString()} + {f.Client!.Value.GetString()}") };
                },
            });
            o.Collection("broken", new CollectionRules { Policy = ConflictPolicy.Custom, Resolver = _ => throw new InvalidOperationException("bug") });
        });

        var (_, pushB) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "notes");
        var (_, broken) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "broken");

        Assert.Equal(MutationStatus.Merged, pushB.Results[0].Status);
        Assert.Equal("from A + from B", (await DocumentAsync(server, "notes")).Fields["title"].Value.GetString());
        Assert.Equal("notes", seen!.Collection);
        Assert.Equal(MutationStatus.Rejected, broken.Results[0].Status);
        Assert.Equal("from A", (await DocumentAsync(server, "broken")).Fields["title"].Value.GetString());
    }

    [Fact]
    public async Task Manual_policy_opens_a_conflict_seen_in_pull_and_in_the_list_while_the_rest_applies()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var a = new Device(time);
        var b = new Device(time);

        var (_, pushB) = await ConcurrentTitlesAsync(server, a, b, "notes");

        var result = pushB.Results[0];
        Assert.Equal(MutationStatus.Conflict, result.Status);
        Assert.NotNull(result.ConflictId);
        Assert.True(Guid.TryParse(result.ConflictId, out var id) && id.Version == 7);
        var state = await DocumentAsync(server, "notes");
        Assert.Equal("from A", state.Fields["title"].Value.GetString());
        Assert.Equal("B body", state.Fields["body"].Value.GetString());
        var pulled = Assert.Single((await server.Bob.PullAllAsync(Scope)).SelectMany(p => p.Conflicts ?? []));
        var listed = Assert.Single(await server.Bob.ConflictsAsync(Scope));
        Assert.Equal(JsonSerializer.Serialize(pulled, ProtocolJson.ConflictRecord), JsonSerializer.Serialize(listed, ProtocolJson.ConflictRecord));
        Assert.Equal(result.ConflictId, listed.Id);
        Assert.Equal(ConflictStatus.Open, listed.Status);
        Assert.Equal(b.Id, listed.ClientId);
        Assert.Equal(1, listed.MutationId);
        Assert.Equal(Times.Start, listed.CreatedAt);
        var field = Assert.Single(listed.Fields);
        Assert.Equal("title", field.Name);
        Assert.Equal("from A", field.Server.Value.GetString());
        Assert.Equal("from B", field.Client.Value.GetString());
        Assert.Equal(state.Revision + 1, listed.Revision);
    }

    [Theory]
    [InlineData("server", "from A")]
    [InlineData("client", "from B")]
    [InlineData("edited", "merged by hand")]
    public async Task The_resolve_endpoint_writes_the_choice_and_every_device_pulls_it(string choice, string expected)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var (_, pushB) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "notes");
        var conflictId = pushB.Results[0].ConflictId!;
        var cursor = (await server.Bob.PullAsync(Scope)).Cursor;

        var resolved = await server.Alice.ResolveAsync(conflictId, new ResolveConflictRequest
        {
            Choice = choice,
            Fields = choice == "edited" ? Device.Fields("""{"title":"merged by hand"}""") : null,
        });

        Assert.Equal(ConflictStatus.Resolved, resolved.Status);
        Assert.Equal(choice, resolved.Resolution);
        Assert.Empty(await server.Bob.ConflictsAsync(Scope));
        var page = await server.Bob.PullAsync(Scope, cursor);
        Assert.Equal(resolved.Revision, Assert.Single(page.Conflicts!).Revision);
        Assert.Equal(resolved.Revision, page.Cursor);
        if (choice == "server")
        {
            Assert.Empty(page.Changes);
            Assert.Equal(cursor + 1, resolved.Revision);
        }
        else
        {
            var change = Assert.Single(page.Changes);
            Assert.Equal(expected, change.State.Fields["title"].Value.GetString());
            Assert.Equal("B body", change.State.Fields["body"].Value.GetString());
            Assert.Equal(resolved.Revision - 1, change.State.Revision);
        }

        Assert.Equal(expected, (await DocumentAsync(server, "notes")).Fields["title"].Value.GetString());

        // Asking again changes nothing: the first resolution stands.
        var again = await server.Bob.ResolveAsync(conflictId, new ResolveConflictRequest { Choice = "server" });
        Assert.Equal(choice, again.Resolution);
        Assert.Empty((await server.Bob.PullAsync(Scope, page.Cursor)).Changes);
    }

    [Fact]
    public async Task An_edited_resolution_may_only_write_the_conflict_fields()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var (_, pushB) = await ConcurrentTitlesAsync(server, new Device(time), new Device(time), "notes");
        var before = await server.Alice.SnapshotAsync(Scope);

        using var foreign = await server.Alice.ResolveRawAsync(pushB.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "edited", Fields = Device.Fields("""{"body":"sneaky"}""") });
        using var empty = await server.Alice.ResolveRawAsync(pushB.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "edited" });
        using var badChoice = await server.Alice.ResolveRawAsync(pushB.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "mine" });
        using var fieldsWithServer = await server.Alice.ResolveRawAsync(pushB.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "server", Fields = Device.Fields("""{"title":"x"}""") });

        await Api.AssertProblemAsync(foreign, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        await Api.AssertProblemAsync(empty, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        await Api.AssertProblemAsync(badChoice, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        await Api.AssertProblemAsync(fieldsWithServer, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));
    }

    [Fact]
    public async Task A_resolve_mutation_resolves_an_open_conflict_and_acts_as_a_patch_once_resolved()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var a = new Device(time);
        var b = new Device(time);
        var (_, pushB) = await ConcurrentTitlesAsync(server, a, b, "notes");
        var conflictId = pushB.Results[0].ConflictId!;

        var resolve = await server.Bob.PushAsync(b.Batch(b.Resolve(Scope, "notes", "n", conflictId, """{"title":"chosen on B"}""")));
        var late = await server.Alice.PushAsync(a.Batch(a.Resolve(Scope, "notes", "n", conflictId, """{"title":"chosen on A"}""") with { BaseRevision = 6 }));
        var unknown = await server.Alice.PushAsync(a.Batch(a.Resolve(Scope, "notes", "n", Guid.CreateVersion7().ToString(), """{"title":"x"}""")));
        var elsewhere = await server.Alice.PushAsync(a.Batch(a.Resolve(Scope, "notes", "other-doc", conflictId, """{"title":"x"}""")));

        Assert.Equal(MutationStatus.Applied, resolve.Results[0].Status);
        Assert.True(resolve.Results[0].Revision > 0);
        var record = (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Conflicts ?? []).Single();
        Assert.Equal(ConflictStatus.Resolved, record.Status);
        Assert.Equal("edited", record.Resolution);
        Assert.Equal(resolve.Results[0].Revision + 1, record.Revision);
        Assert.Equal(MutationStatus.Applied, late.Results[0].Status); // a patch that saw the resolution
        Assert.Equal("chosen on A", (await DocumentAsync(server, "notes")).Fields["title"].Value.GetString());
        Assert.Equal(MutationStatus.Rejected, unknown.Results[0].Status);
        Assert.Equal(MutationStatus.Rejected, elsewhere.Results[0].Status);
        Assert.Empty(await server.Alice.ConflictsAsync(Scope));
    }

    [Fact]
    public async Task Delete_wins_by_default_and_update_wins_when_configured()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("keep", new CollectionRules { Delete = DeleteRule.UpdateWins }));
        var a = new Device(time);
        var b = new Device(time);
        foreach (var collection in new[] { "notes", "keep" })
        {
            await server.Alice.PushAsync(a.Batch(a.Put(Scope, collection, "n", 0, """{"title":"t"}""")));
        }

        // A deletes, B edits concurrently, in both collections.
        await server.Alice.PushAsync(a.Batch(a.Delete(Scope, "notes", "n", 1), a.Delete(Scope, "keep", "n", 2)));
        var edits = await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n", 1, """{"title":"edited"}"""), b.Patch(Scope, "keep", "n", 2, """{"title":"edited"}""")));

        Assert.Equal(MutationStatus.Merged, edits.Results[0].Status);
        Assert.True((await DocumentAsync(server, "notes")).Deleted);
        Assert.Equal(MutationStatus.Applied, edits.Results[1].Status);
        var kept = await DocumentAsync(server, "keep");
        Assert.False(kept.Deleted);
        Assert.Equal("edited", kept.Fields["title"].Value.GetString());
    }
}
