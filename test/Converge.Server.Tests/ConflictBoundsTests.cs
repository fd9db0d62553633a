using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Tests;

/// <summary>What a push may cost in a collection a person settles: one open record per document and device, caps per document and per scope.</summary>
public class ConflictBoundsTests
{
    private const string Scope = "team:7";

    private static Action<ConvergeServerOptions> Manual(Action<ConvergeServerOptions>? more = null) => o =>
    {
        o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual });
        more?.Invoke(o);
    };

    private static string Big(char c) => new(c, 250_000);

    [Fact]
    public async Task A_thousand_contested_edits_of_a_large_document_by_one_device_join_one_record_whose_size_follows_the_document()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual());
        var owner = new Device(time);
        var attacker = new Device(time);

        // A document with four 250 KB fields.
        await server.Alice.PushAsync(owner.Batch(
            owner.Put(Scope, "notes", "n", 0, $$"""{"f0":"{{Big('a')}}"}"""),
            owner.Patch(Scope, "notes", "n", 1, $$"""{"f1":"{{Big('b')}}"}"""),
            owner.Patch(Scope, "notes", "n", 2, $$"""{"f2":"{{Big('c')}}"}"""),
            owner.Patch(Scope, "notes", "n", 3, $$"""{"f3":"{{Big('d')}}"}""")));

        // A thousand small patches of every field, each from base 0: every one contests all four fields.
        var patches = Enumerable.Range(0, 1_000)
            .Select(i => attacker.Patch(Scope, "notes", "n", 0, $$"""{"f0":"x{{i}}","f1":"y{{i}}","f2":"z{{i}}","f3":"w{{i}}"}"""))
            .ToArray();
        var request = attacker.Batch(patches);
        var requestBytes = JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.PushRequest).Length;
        var pushed = await server.Bob.PushAsync(request);

        Assert.All(pushed.Results, r => Assert.Equal(MutationStatus.Conflict, r.Status));
        var id = Assert.Single(pushed.Results.Select(r => r.ConflictId).Distinct());
        var record = Assert.Single(await server.Alice.ConflictsAsync(Scope));
        Assert.Equal(id, record.Id);
        Assert.Equal(1_000, record.MutationId);
        Assert.Equal(["f0", "f1", "f2", "f3"], record.Fields.Select(f => f.Name).Order());
        Assert.Equal("x999", record.Fields.Single(f => f.Name == "f0").Client.Value.GetString());
        Assert.Equal(Big('a'), record.Fields.Single(f => f.Name == "f0").Server.Value.GetString());

        // What the push stored: one copy of the contested server values (1 MB) and the device's values, not a thousand.
        var stored = StoredConflictBytes(server);
        Assert.InRange(stored, 1_000_000, 1_000_000 + (2 * requestBytes));
    }

    [Fact]
    public async Task A_device_contesting_a_document_again_updates_its_open_record_and_every_device_pulls_the_new_version()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual());
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put(Scope, "notes", "n", 0, """{"title":"original","body":"text"}""")));
        await server.Alice.PushAsync(a.Batch(a.Patch(Scope, "notes", "n", 1, """{"title":"from A","body":"A body"}""")));

        var first = await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n", 1, """{"title":"from B"}""")));
        var firstRecord = Assert.Single(await server.Alice.ConflictsAsync(Scope));
        var second = await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n", 1, """{"title":"from B again","body":"B body"}""")));

        Assert.Equal(first.Results[0].ConflictId, second.Results[0].ConflictId);
        var record = Assert.Single(await server.Alice.ConflictsAsync(Scope));
        Assert.True(record.Revision > firstRecord.Revision);
        Assert.Equal("from B again", record.Fields.Single(f => f.Name == "title").Client.Value.GetString());
        Assert.Equal("B body", record.Fields.Single(f => f.Name == "body").Client.Value.GetString());

        // A device that had pulled the first version gets the new one after its cursor.
        var after = (await server.Alice.PullAsync(Scope)).Cursor;
        await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n", 1, """{"title":"from B a third time"}""")));
        var page = await server.Alice.PullAsync(Scope, after);
        Assert.Equal("from B a third time", Assert.Single(page.Conflicts!).Fields.Single(f => f.Name == "title").Client.Value.GetString());
    }

    [Fact]
    public async Task Past_the_cap_per_document_a_new_conflict_is_rejected_whole_until_one_is_resolved()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual(o => o.MaxOpenConflictsPerDocument = 2));
        var owner = new Device(time);
        await server.Alice.PushAsync(owner.Batch(owner.Put(Scope, "notes", "n", 0, """{"title":"original"}""")));
        await server.Alice.PushAsync(owner.Batch(owner.Patch(Scope, "notes", "n", 1, """{"title":"owner's"}""")));
        var devices = Enumerable.Range(0, 3).Select(_ => new Device(time)).ToArray();
        var results = new List<MutationResult>();
        for (var i = 0; i < devices.Length; i++)
        {
            var device = devices[i];
            var push = await server.Bob.PushAsync(device.Batch(device.Patch(Scope, "notes", "n", 1, $$"""{"title":"{{device.Id}}","note{{i}}":"uncontested"}""")));
            results.Add(push.Results[0]);
        }

        Assert.Equal(MutationStatus.Conflict, results[0].Status);
        Assert.Equal(MutationStatus.Conflict, results[1].Status);
        Assert.Equal(MutationStatus.Rejected, results[2].Status);
        Assert.Contains("2 open conflicts", results[2].Reason, StringComparison.Ordinal);
        var state = (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Changes).Last().State;
        Assert.True(state.Fields.ContainsKey("note1"));
        Assert.False(state.Fields.ContainsKey("note2")); // nothing of the rejected mutation applied

        // The device that already has a record joins it, whatever the cap.
        var again = await server.Bob.PushAsync(devices[0].Batch(devices[0].Patch(Scope, "notes", "n", 1, """{"title":"again"}""")));
        Assert.Equal(results[0].ConflictId, again.Results[0].ConflictId);

        await server.Alice.ResolveAsync(results[0].ConflictId!, new ResolveConflictRequest { Choice = "server" });
        var retried = await server.Bob.PushAsync(devices[2].Batch(devices[2].Patch(Scope, "notes", "n", 1, """{"title":"third"}""")));
        Assert.Equal(MutationStatus.Conflict, retried.Results[0].Status);
    }

    [Fact]
    public async Task Past_the_cap_per_scope_a_new_conflict_is_rejected_with_the_reason()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual(o => o.MaxOpenConflictsPerScope = 2));
        var other = new Device(time);
        var docs = new[] { "n1", "n2", "n3" };
        var baseOf = await ChangedSinceTheyWereReadAsync(server, time, docs);

        var push = await server.Bob.PushAsync(other.Batch([.. docs.Select(d => other.Patch(Scope, "notes", d, baseOf[d], """{"title":"other's"}"""))]));

        Assert.Equal([MutationStatus.Conflict, MutationStatus.Conflict, MutationStatus.Rejected], push.Results.Select(r => r.Status));
        Assert.Contains($"Scope '{Scope}' has 2 open conflicts", push.Results[2].Reason, StringComparison.Ordinal);
        Assert.Equal(2, (await server.Alice.ConflictsAsync(Scope)).Count);
    }

    [Fact]
    public async Task A_resolution_makes_room_under_the_cap_per_scope_for_a_conflict_later_in_the_same_push()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual(o => o.MaxOpenConflictsPerScope = 2));
        var other = new Device(time);
        var docs = new[] { "n1", "n2", "n3" };
        var baseOf = await ChangedSinceTheyWereReadAsync(server, time, docs);

        var first = await server.Bob.PushAsync(other.Batch(other.Patch(Scope, "notes", "n1", baseOf["n1"], """{"title":"other's"}""")));

        // One open; this push opens a second (at the cap), settles the first, and so has room for a third document's.
        var push = await server.Bob.PushAsync(other.Batch(
            other.Patch(Scope, "notes", "n2", baseOf["n2"], """{"title":"other's"}"""),
            other.Resolve(Scope, "notes", "n1", first.Results[0].ConflictId!, """{"title":"settled"}"""),
            other.Patch(Scope, "notes", "n3", baseOf["n3"], """{"title":"other's"}""")));

        Assert.Equal([MutationStatus.Conflict, MutationStatus.Applied, MutationStatus.Conflict], push.Results.Select(r => r.Status));
        Assert.Equal(["n2", "n3"], (await server.Alice.ConflictsAsync(Scope)).Select(r => r.DocumentId).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_push_that_joins_a_record_and_then_resolves_it_leaves_it_resolved()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual());
        var (b, id) = await OpenOneAsync(server, time, "from B");

        var push = await server.Bob.PushAsync(b.Batch(
            b.Patch(Scope, "notes", "n", 1, """{"title":"from B again"}"""),
            b.Resolve(Scope, "notes", "n", id, """{"title":"settled"}""")));

        Assert.Equal(id, push.Results[0].ConflictId);
        Assert.Equal(MutationStatus.Applied, push.Results[1].Status);
        Assert.Empty(await server.Alice.ConflictsAsync(Scope));
        var state = (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Changes).Last().State;
        Assert.Equal("settled", state.Fields["title"].Value.GetString());
    }

    [Fact]
    public async Task Another_principal_sending_a_devices_client_id_cannot_write_into_that_devices_record()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual());
        var (b, id) = await OpenOneAsync(server, time, "Bob's edit");

        // Alice read Bob's device id from the record, and pushes under it.
        var impostor = new Device(time, b.Node);
        var pushed = await server.Alice.PushAsync(impostor.Batch(impostor.Patch(Scope, "notes", "n", 1, """{"title":"Alice's words"}""")));

        Assert.Equal(MutationStatus.Conflict, pushed.Results[0].Status);
        Assert.NotEqual(id, pushed.Results[0].ConflictId);
        var records = await server.Alice.ConflictsAsync(Scope);
        Assert.Equal(2, records.Count);
        Assert.Equal("Bob's edit", records.Single(r => r.Id == id).Fields.Single().Client.Value.GetString());
    }

    [Fact]
    public async Task A_resolve_refused_in_a_push_leaves_the_record_that_push_joined_as_it_was_joined()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, Manual());
        var (b, id) = await OpenOneAsync(server, time, "from B");
        var owner = new Device(time);
        await server.Alice.PushAsync(owner.Batch(owner.Put(Scope, "notes", "other", 0, """{"title":"x"}""")));

        // The resolve names another document than the record's: refused, and the edit before it stays in the record.
        var push = await server.Bob.PushAsync(b.Batch(
            b.Patch(Scope, "notes", "n", 1, """{"title":"from B again"}"""),
            b.Resolve(Scope, "notes", "other", id, """{"title":"settled"}"""),
            b.Patch(Scope, "notes", "n", 1, """{"title":"from B a third time"}""")));

        Assert.Equal([MutationStatus.Conflict, MutationStatus.Rejected, MutationStatus.Conflict], push.Results.Select(r => r.Status));
        Assert.Equal(id, push.Results[2].ConflictId);
        var record = Assert.Single(await server.Alice.ConflictsAsync(Scope));
        Assert.Equal(id, record.Id);
        Assert.Equal("from B a third time", record.Fields.Single().Client.Value.GetString());
    }

    /// <summary>Creates the notes, then has a device of alice change each one's title after it was read.</summary>
    /// <returns>The revision each note was read at: a patch from it contests the title.</returns>
    private static async Task<Dictionary<string, long>> ChangedSinceTheyWereReadAsync(TestServer server, Microsoft.Extensions.Time.Testing.FakeTimeProvider time, string[] docs)
    {
        var owner = new Device(time);
        foreach (var doc in docs)
        {
            await server.Alice.PushAsync(owner.Batch(owner.Put(Scope, "notes", doc, 0, """{"title":"original"}""")));
        }

        var baseOf = (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Changes).ToDictionary(c => c.DocumentId, c => c.State.Revision);
        foreach (var doc in docs)
        {
            await server.Alice.PushAsync(owner.Batch(owner.Patch(Scope, "notes", doc, baseOf[doc], """{"title":"owner's"}""")));
        }

        return baseOf;
    }

    /// <summary>Creates note "n", has a device of alice change its title, and one of bob contest it from the first revision.</summary>
    /// <returns>Bob's device and the conflict record it opened.</returns>
    private static async Task<(Device Bob, string Id)> OpenOneAsync(TestServer server, Microsoft.Extensions.Time.Testing.FakeTimeProvider time, string title)
    {
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put(Scope, "notes", "n", 0, """{"title":"original"}""")));
        await server.Alice.PushAsync(a.Batch(a.Patch(Scope, "notes", "n", 1, """{"title":"from A"}""")));
        var opened = await server.Bob.PushAsync(b.Batch(b.Patch(Scope, "notes", "n", 1, $$"""{"title":"{{title}}"}""")));
        return (b, opened.Results[0].ConflictId!);
    }

    private static long StoredConflictBytes(TestServer server)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = server.DatabasePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT coalesce(sum(length(record)), 0) FROM conflicts;";
        return (long)command.ExecuteScalar()!;
    }
}
