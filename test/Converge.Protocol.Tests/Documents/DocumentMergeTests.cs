using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using static Converge.Protocol.Tests.Documents.Doc;

namespace Converge.Protocol.Tests.Documents;

public class DocumentMergeTests
{
    /// <summary>A resolver for tests where the policy must never be consulted.</summary>
    private static readonly ConflictResolver Unreachable = _ => throw new InvalidOperationException("The resolver must not be called.");

    public static TheoryData<ConflictPolicy> Policies => [.. Enum.GetValues<ConflictPolicy>()];

    private static CollectionRules RulesFor(ConflictPolicy policy) => Rules(policy, resolver: policy == ConflictPolicy.Custom ? Unreachable : null);

    /// <summary>
    /// The common start: C created the document at revision 1 with <c>{"a":"base","b":"b0"}</c>, every replica synced it
    /// (base revision 1), then B changed <c>a</c> to "server" at revision 2 with timestamp 200.
    /// </summary>
    private static DocumentState ServerChangedA(CollectionRules? rules = null)
    {
        var synced = Changed(null, Put(T(100, C), """{"a":"base","b":"b0"}"""), C, 1, rules);
        return Changed(synced, Patch(T(200, B), """{"a":"server"}""", @base: 1), B, 2, rules);
    }

    // ---- Creation ----

    [Fact]
    public void A_put_on_an_unknown_document_creates_it_with_its_fields_stamped()
    {
        var outcome = Apply(null, Put(T(100, A), """{"a":1,"b":"x"}"""), A, 7);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.Null(outcome.ConflictFields);
        Assert.False(outcome.State.Deleted);
        Assert.Equal(7, outcome.State.Revision);
        AssertJson("""{"a":1,"b":"x"}""", outcome.State);
        var a = outcome.State.Fields["a"];
        Assert.Equal(T(100, A), a.Hlc);
        Assert.Equal(7, a.Revision);
        Assert.Equal(A, a.Writer);
        Assert.Null(a.WriterOverride);
        Assert.False(a.Removed);
    }

    [Fact]
    public void A_patch_on_an_unknown_document_creates_it_and_keeps_its_removals_as_stamped_tombstones()
    {
        var outcome = Apply(null, Patch(T(100, A), """{"a":1}""", remove: ["gone"]), A, 3);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        AssertJson("""{"a":1}""", outcome.State);
        var gone = outcome.State.Fields["gone"];
        Assert.True(gone.Removed);
        Assert.Equal(T(100, A), gone.Hlc);
        Assert.Equal(3, gone.Revision);
    }

    [Fact]
    public void Under_DeleteWins_a_patch_or_increment_of_a_document_the_server_no_longer_has_is_discarded()
    {
        // The writer saw the document at revision 7; the server has none: it was deleted and its tombstone collected.
        var patch = Apply(null, Patch(T(100, A), """{"done":true}""", @base: 7), A, 9);
        var increment = Apply(null, Increment(T(100, A), """{"n":1}""", @base: 7), A, 9);

        Assert.False(patch.Changed);
        Assert.Equal(MutationStatus.Merged, patch.Status);
        Assert.False(increment.Changed);
        Assert.Equal(MutationStatus.Merged, increment.Status);
    }

    [Fact]
    public void A_put_of_a_document_the_server_no_longer_has_re_creates_it_and_UpdateWins_keeps_a_patch()
    {
        var put = Apply(null, Put(T(100, A), """{"title":"again"}""", @base: 7), A, 9);
        var patch = Apply(null, Patch(T(100, A), """{"done":true}""", @base: 7), A, 9, new CollectionRules { Delete = DeleteRule.UpdateWins });

        Assert.True(put.Changed);
        AssertJson("""{"title":"again"}""", put.State);
        Assert.True(patch.Changed);
        AssertJson("""{"done":true}""", patch.State);
    }

    [Fact]
    public void An_increment_on_an_unknown_document_creates_it_with_the_amounts()
    {
        var outcome = Apply(null, Increment(T(100, A), """{"n":5,"m":-2.5}"""), A, 1);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        AssertJson("""{"n":5,"m":-2.5}""", outcome.State);
    }

    [Fact]
    public void A_delete_on_an_unknown_document_creates_a_tombstone()
    {
        var outcome = Apply(null, Delete(T(100, A)), A, 4);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.State.Deleted);
        Assert.Equal(T(100, A), outcome.State.DeletedHlc);
        Assert.Equal(4, outcome.State.DeletedRevision);
        Assert.Equal(A, outcome.State.DeletedBy);
        Assert.Equal(4, outcome.State.Revision);
        Assert.Empty(outcome.State.Fields);
        Assert.Null(outcome.State.ToJson());
    }

    [Fact]
    public void A_resolve_mutation_is_refused_by_Apply()
    {
        var resolve = Mutation(MutationKind.Resolve, T(100, A), fields: """{"a":1}""") with { ConflictId = "c1" };

        Assert.Throws<ArgumentException>(() => Apply(null, resolve, A, 1));
    }

    // ---- Put and patch ----

    [Fact]
    public void A_put_removes_the_fields_it_lists_and_keeps_their_timestamps()
    {
        var synced = Changed(null, Put(T(100, B), """{"a":1,"b":2,"c":3}"""), B, 1);

        var state = Changed(synced, Put(T(200, A), """{"a":10}""", @base: 1, remove: ["b", "c"]), A, 2);

        AssertJson("""{"a":10}""", state);
        Assert.All(["b", "c"], name =>
        {
            Assert.True(state.Fields[name].Removed);
            Assert.Equal(T(200, A), state.Fields[name].Hlc);
            Assert.Equal(2, state.Fields[name].Revision);
        });
    }

    [Fact]
    public void A_patch_changes_only_the_fields_it_names()
    {
        var synced = Changed(null, Put(T(100, B), """{"a":1,"b":2,"c":3}"""), B, 1);

        var state = Changed(synced, Patch(T(200, A), """{"a":10}""", @base: 1, remove: ["c"]), A, 2);

        AssertJson("""{"a":10,"b":2}""", state);
        Assert.Equal(synced.Fields["b"], state.Fields["b"]);
        Assert.Equal(2, state.Fields["a"].Revision);
        Assert.Equal(A, state.Fields["a"].Writer);
        Assert.True(state.Fields["c"].Removed);
    }

    [Fact]
    public void Applying_never_changes_the_state_it_is_given()
    {
        var synced = Changed(null, Put(T(100, B), """{"a":1,"b":2}"""), B, 1);
        var before = Describe(synced);

        _ = Apply(synced, Patch(T(200, A), """{"a":10}""", @base: 1, remove: ["b"]), A, 2);
        _ = Apply(synced, Increment(T(200, A), """{"a":1}""", @base: 1), A, 2);
        _ = Apply(synced, Delete(T(200, A), @base: 1), A, 2);

        Assert.Equal(before, Describe(synced));
    }

    // ---- Concurrency: base revision and writer ----

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_write_that_saw_the_servers_value_is_not_concurrent_and_applies_even_with_an_older_timestamp(ConflictPolicy policy)
    {
        var rules = RulesFor(policy);
        var server = ServerChangedA(rules);

        // A pulled revision 2 before writing (base 2); its timestamp is older than B's, which does not matter.
        var outcome = Apply(server, Patch(T(150, A), """{"a":"client"}""", @base: 2), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.Changed);
        AssertJson("""{"a":"client","b":"b0"}""", outcome.State);
        Assert.Equal(T(150, A), outcome.State.Fields["a"].Hlc);
    }

    [Fact]
    public void A_write_based_on_an_older_revision_of_a_field_another_replica_changed_is_concurrent()
    {
        var rules = Rules(ConflictPolicy.ServerWins);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(300, A), """{"a":"client"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Merged, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.NotNull(outcome.Reason);
        AssertJson("""{"a":"server","b":"b0"}""", outcome.State);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_replica_never_conflicts_with_its_own_earlier_offline_writes(ConflictPolicy policy)
    {
        var rules = RulesFor(policy);
        var synced = Changed(null, Put(T(100, C), """{"a":"base"}"""), C, 1, rules);
        var first = Changed(synced, Patch(T(200, A), """{"a":"one"}""", @base: 1), A, 2, rules);

        // Still offline: the second write has the same base revision as the first.
        var outcome = Apply(first, Patch(T(300, A), """{"a":"two"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.Null(outcome.ConflictFields);
        AssertJson("""{"a":"two"}""", outcome.State);
    }

    // ---- Policies on a concurrent edit of the same field ----

    [Theory]
    [InlineData(300, "client")]
    [InlineData(150, "server")]
    public void LastWriterWins_keeps_the_value_with_the_higher_timestamp(long clientTime, string expected)
    {
        var server = ServerChangedA();

        var outcome = Apply(server, Patch(T(clientTime, A), """{"a":"client"}""", @base: 1), A, 3);

        AssertJson($$"""{"a":"{{expected}}","b":"b0"}""", outcome.State);
        Assert.Equal(expected == "client", outcome.Changed);
        Assert.Equal(expected == "client" ? MutationStatus.Applied : MutationStatus.Merged, outcome.Status);
        Assert.Equal(expected == "client" ? T(clientTime, A) : T(200, B), outcome.State.Fields["a"].Hlc);
    }

    [Theory]
    [InlineData(300, 200)]
    [InlineData(200, 300)]
    [InlineData(200, 200)]
    public void LastWriterWins_gives_the_same_field_whichever_write_arrives_first(long aTime, long bTime)
    {
        var synced = Changed(null, Put(T(100, C), """{"a":"base"}"""), C, 1);
        var fromA = Patch(T(aTime, A), """{"a":"A"}""", @base: 1);
        var fromB = Patch(T(bTime, B), """{"a":"B"}""", @base: 1);

        var ab = Apply(Changed(synced, fromA, A, 2), fromB, B, 3).State;
        var ba = Apply(Changed(synced, fromB, B, 2), fromA, A, 3).State;

        var winner = T(aTime, A) > T(bTime, B) ? "A" : "B";
        AssertJson($$"""{"a":"{{winner}}"}""", ab);
        Assert.True(ab.SameContentAs(ba), $"{Describe(ab)} vs {Describe(ba)}");
    }

    [Fact]
    public void ServerWins_keeps_the_servers_value_even_against_a_newer_write()
    {
        var rules = Rules(ConflictPolicy.ServerWins);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(300, A), """{"a":"client","b":"b1"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Merged, outcome.Status);
        AssertJson("""{"a":"server","b":"b1"}""", outcome.State);
        Assert.Equal(server.Fields["a"], outcome.State.Fields["a"]);
    }

    [Fact]
    public void ClientWins_takes_the_incoming_value_even_against_a_newer_one_and_keeps_the_higher_timestamp()
    {
        var rules = Rules(ConflictPolicy.ClientWins);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(150, A), """{"a":"client"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.Changed);
        AssertJson("""{"a":"client","b":"b0"}""", outcome.State);
        var a = outcome.State.Fields["a"];
        Assert.Equal(T(200, B), a.Hlc);
        Assert.Equal(A, a.Writer);
        Assert.Equal(3, a.Revision);
    }

    [Fact]
    public void Custom_gives_the_resolver_base_server_and_client_values_and_applies_its_result()
    {
        var calls = new List<CustomConflict>();
        var rules = Rules(ConflictPolicy.Custom, resolver: conflict =>
        {
            calls.Add(conflict);
            return new Dictionary<string, JsonElement> { ["a"] = V("\"resolved\"") };
        });
        var server = ServerChangedA(rules);
        var mutation = Patch(T(300, A), """{"a":"client","b":"b1"}""", @base: 1, baseValues: """{"a":"base","b":"b0"}""");

        var outcome = Apply(server, mutation, A, 3, rules);

        var conflict = Assert.Single(calls);
        Assert.Equal("c", conflict.Collection);
        Assert.Equal("d1", conflict.DocumentId);
        var field = Assert.Single(conflict.Fields);
        Assert.Equal("a", field.Name);
        AssertValue("\"base\"", field.Base);
        AssertValue("\"server\"", field.Server);
        AssertValue("\"client\"", field.Client);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Merged, outcome.Status);
        AssertJson("""{"a":"resolved","b":"b1"}""", outcome.State);
        Assert.Equal(T(300, A), outcome.State.Fields["a"].Hlc);
        Assert.Equal(3, outcome.State.Fields["a"].Revision);
    }

    [Fact]
    public void Custom_keeps_the_servers_value_for_a_field_the_resolver_leaves_out_and_shows_a_removal_as_null()
    {
        var calls = new List<CustomConflict>();
        var rules = Rules(ConflictPolicy.Custom, resolver: conflict =>
        {
            calls.Add(conflict);
            return new Dictionary<string, JsonElement>();
        });
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(300, A), null, @base: 1, remove: ["a"]), A, 3, rules);

        var field = Assert.Single(Assert.Single(calls).Fields);
        Assert.Null(field.Base);
        AssertValue("\"server\"", field.Server);
        Assert.Null(field.Client);
        Assert.Equal(MutationStatus.Merged, outcome.Status);
        AssertJson("""{"a":"server","b":"b0"}""", outcome.State);
    }

    [Fact]
    public void Manual_applies_the_fields_without_conflict_and_returns_the_others_with_base_server_and_client()
    {
        var rules = Rules(ConflictPolicy.Manual);
        var server = ServerChangedA(rules);
        var mutation = Patch(T(300, A), """{"a":"client","b":"b1"}""", @base: 1, baseValues: """{"a":"base","b":"b0"}""");

        var outcome = Apply(server, mutation, A, 3, rules);

        Assert.Equal(MutationStatus.Conflict, outcome.Status);
        Assert.True(outcome.Changed);
        Assert.Contains("a", outcome.Reason, StringComparison.Ordinal);
        AssertJson("""{"a":"server","b":"b1"}""", outcome.State);
        Assert.Equal(server.Fields["a"], outcome.State.Fields["a"]);
        Assert.Equal(3, outcome.State.Revision);

        var conflict = Assert.Single(outcome.ConflictFields!);
        Assert.Equal("a", conflict.Name);
        AssertValue("\"base\"", conflict.Base);
        Assert.Equal(server.Fields["a"], conflict.Server);
        AssertValue("\"client\"", conflict.Client.Value);
        Assert.Equal(T(300, A), conflict.Client.Hlc);
        Assert.Equal(A, conflict.Client.Writer);
    }

    [Fact]
    public void Manual_with_only_conflicting_fields_changes_nothing_yet()
    {
        var rules = Rules(ConflictPolicy.Manual);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(300, A), """{"a":"client"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Conflict, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.Same(server, outcome.State);
        Assert.Null(Assert.Single(outcome.ConflictFields!).Base);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void The_same_value_written_on_both_sides_is_not_a_conflict_and_keeps_the_later_timestamp(ConflictPolicy policy)
    {
        var rules = RulesFor(policy);
        var synced = Changed(null, Put(T(100, C), """{"a":"base"}"""), C, 1, rules);
        var server = Changed(synced, Patch(T(200, B), """{"a":"same"}""", @base: 1), B, 2, rules);

        var later = Apply(server, Patch(T(300, A), """{"a":"same"}""", @base: 1), A, 3, rules);
        var earlier = Apply(server, Patch(T(150, A), """{"a":"same"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, later.Status);
        Assert.Null(later.ConflictFields);
        Assert.Equal(T(300, A), later.State.Fields["a"].Hlc);
        Assert.Equal(MutationStatus.Applied, earlier.Status);
        Assert.Null(earlier.ConflictFields);
        Assert.Equal(T(200, B), earlier.State.Fields["a"].Hlc);
        Assert.False(earlier.Changed);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void Concurrent_edits_of_different_fields_always_merge(ConflictPolicy policy)
    {
        var rules = RulesFor(policy);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Patch(T(150, A), """{"b":"client"}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.Null(outcome.ConflictFields);
        AssertJson("""{"a":"server","b":"client"}""", outcome.State);
    }

    // ---- Delete against a concurrent update ----

    [Fact]
    public void DeleteWins_a_delete_after_a_concurrent_update_deletes_and_keeps_no_fields()
    {
        var server = ServerChangedA();

        var outcome = Apply(server, Delete(T(150, A), @base: 1), A, 3);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.State.Deleted);
        Assert.Empty(outcome.State.Fields);
        Assert.Equal(A, outcome.State.DeletedBy);
        Assert.Equal(3, outcome.State.DeletedRevision);
        Assert.Equal(T(150, A), outcome.State.DeletedHlc);
    }

    [Fact]
    public void DeleteWins_an_update_after_a_concurrent_delete_is_discarded()
    {
        var synced = Changed(null, Put(T(100, C), """{"a":"base"}"""), C, 1);
        var deleted = Changed(synced, Delete(T(150, A), @base: 1), A, 2);

        var outcome = Apply(deleted, Patch(T(200, B), """{"a":"server"}""", @base: 1), B, 3);

        Assert.Equal(MutationStatus.Merged, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.Same(deleted, outcome.State);
        Assert.NotNull(outcome.Reason);
    }

    [Theory]
    [InlineData(DeleteRule.DeleteWins, true)]
    [InlineData(DeleteRule.UpdateWins, false)]
    public void A_delete_and_a_concurrent_update_end_the_same_in_both_delivery_orders(DeleteRule rule, bool deleted)
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, rule);
        var synced = Changed(null, Put(T(100, C), """{"a":"base","b":"b0"}"""), C, 1, rules);
        var update = Patch(T(200, B), """{"a":"B"}""", @base: 1);
        var delete = Delete(T(150, A), @base: 1);

        var updateFirst = Apply(Changed(synced, update, B, 2, rules), delete, A, 3, rules).State;
        var deleteFirst = Apply(Changed(synced, delete, A, 2, rules), update, B, 3, rules).State;

        Assert.Equal(deleted, updateFirst.Deleted);
        Assert.True(updateFirst.SameContentAs(deleteFirst), $"{Describe(updateFirst)} vs {Describe(deleteFirst)}");
        if (!deleted)
        {
            AssertJson("""{"a":"B","b":"b0"}""", deleteFirst);
        }
    }

    [Fact]
    public void UpdateWins_a_delete_after_a_concurrent_update_is_discarded()
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, DeleteRule.UpdateWins);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Delete(T(300, A), @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Merged, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.Same(server, outcome.State);
    }

    [Fact]
    public void UpdateWins_an_update_after_a_concurrent_delete_revives_the_document_with_all_its_fields()
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, DeleteRule.UpdateWins);
        var synced = Changed(null, Put(T(100, C), """{"a":"base","b":"b0"}"""), C, 1, rules);
        var deleted = Changed(synced, Delete(T(150, A), @base: 1), A, 2, rules);

        var outcome = Apply(deleted, Patch(T(200, B), """{"a":"B"}""", @base: 1), B, 3, rules);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.False(outcome.State.Deleted);
        Assert.Equal(3, outcome.State.Revision);
        // The last delete's marks stay, so later writes that had not seen it are still recognised as concurrent with it.
        Assert.Equal(2, outcome.State.DeletedRevision);
        Assert.Equal(A, outcome.State.DeletedBy);
        AssertJson("""{"a":"B","b":"b0"}""", outcome.State);
    }

    [Fact]
    public void UpdateWins_a_delete_without_a_concurrent_update_deletes()
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, DeleteRule.UpdateWins);
        var server = ServerChangedA(rules);

        var outcome = Apply(server, Delete(T(300, A), @base: 2), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.State.Deleted);
        Assert.Null(outcome.State.ToJson());
    }

    [Theory]
    [InlineData(DeleteRule.DeleteWins)]
    [InlineData(DeleteRule.UpdateWins)]
    public void A_delete_of_a_deleted_document_leaves_it_deleted(DeleteRule rule)
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, rule);
        var deleted = Changed(Changed(null, Put(T(100, C), """{"a":1}"""), C, 1, rules), Delete(T(150, A), @base: 1), A, 2, rules);

        var outcome = Apply(deleted, Delete(T(200, B), @base: 2), B, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.State.Deleted);
        Assert.True(outcome.State.SameContentAs(deleted));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DeleteWins_a_put_after_a_seen_delete_recreates_the_document_from_scratch(bool ownDelete)
    {
        var synced = Changed(null, Put(T(100, C), """{"a":1,"b":2}"""), C, 1);
        var deleter = ownDelete ? A : B;
        var deleted = Changed(synced, Delete(T(150, deleter), @base: 1), deleter, 2);

        // A saw the delete: it pulled revision 2, or the delete was its own (offline, base still 1).
        var outcome = Apply(deleted, Put(T(200, A), """{"c":3}""", @base: ownDelete ? 1 : 2), A, 3);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.True(outcome.Changed);
        Assert.False(outcome.State.Deleted);
        AssertJson("""{"c":3}""", outcome.State);
        Assert.Equal(["c"], outcome.State.Fields.Keys);
        Assert.Equal(3, outcome.State.Revision);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UpdateWins_a_put_after_a_seen_delete_revives_the_document_over_the_tombstones_fields(bool ownDelete)
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, DeleteRule.UpdateWins);
        var synced = Changed(null, Put(T(100, C), """{"a":1,"b":2}"""), C, 1, rules);
        var deleter = ownDelete ? A : B;
        var deleted = Changed(synced, Delete(T(150, deleter), @base: 1), deleter, 2, rules);

        var outcome = Apply(deleted, Put(T(200, A), """{"c":3}""", @base: ownDelete ? 1 : 2, remove: ["b"]), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.False(outcome.State.Deleted);
        AssertJson("""{"a":1,"c":3}""", outcome.State);
        Assert.Equal(3, outcome.State.Revision);
    }

    [Fact]
    public void DeleteWins_a_write_that_had_not_seen_a_delete_is_discarded_even_after_a_revival()
    {
        var synced = Changed(null, Put(T(100, C), """{"a":1}"""), C, 1);
        var deleted = Changed(synced, Delete(T(150, A), @base: 1), A, 2);
        var revived = Changed(deleted, Put(T(160, A), """{"c":3}""", @base: 1), A, 3);

        var outcome = Apply(revived, Patch(T(200, B), """{"b":2}""", @base: 1), B, 4);
        var fromReviver = Apply(revived, Patch(T(170, A), """{"b":2}""", @base: 1), A, 4);
        var fromOneWhoSawIt = Apply(revived, Patch(T(200, B), """{"b":2}""", @base: 2), B, 4);

        Assert.Equal(MutationStatus.Merged, outcome.Status);
        Assert.Same(revived, outcome.State);
        Assert.Equal(MutationStatus.Applied, fromReviver.Status);
        AssertJson("""{"b":2,"c":3}""", fromReviver.State);
        Assert.Equal(MutationStatus.Applied, fromOneWhoSawIt.Status);
    }

    [Theory]
    [InlineData(DeleteRule.DeleteWins)]
    [InlineData(DeleteRule.UpdateWins)]
    public void A_patch_or_increment_on_a_document_the_writer_saw_deleted_is_discarded(DeleteRule rule)
    {
        var rules = Rules(ConflictPolicy.LastWriterWins, rule);
        var synced = Changed(null, Put(T(100, C), """{"a":1}"""), C, 1, rules);
        var deleted = Changed(synced, Delete(T(150, B), @base: 1), B, 2, rules);

        var patch = Apply(deleted, Patch(T(200, A), """{"a":2}""", @base: 2), A, 3, rules);
        var increment = Apply(deleted, Increment(T(200, A), """{"a":2}""", @base: 2), A, 3, rules);

        Assert.All([patch, increment], outcome =>
        {
            Assert.Equal(MutationStatus.Merged, outcome.Status);
            Assert.False(outcome.Changed);
            Assert.Same(deleted, outcome.State);
        });
    }

    // ---- Increments ----

    [Fact]
    public void Integer_increments_sum_exactly_beyond_double_precision()
    {
        var state = Changed(null, Put(T(100, C), """{"n":9007199254740993}"""), C, 1);

        state = Changed(state, Increment(T(200, A), """{"n":2}""", @base: 1), A, 2);
        state = Changed(state, Increment(T(210, B), """{"n":-1}""", @base: 1), B, 3);

        Assert.Equal("9007199254740994", state.Fields["n"].Value.GetRawText());
        Assert.Equal(9007199254740994L, state.Fields["n"].Value.GetInt64());
    }

    [Theory]
    [InlineData("0.25", "0.5", 0.75)]
    [InlineData("1", "0.5", 1.5)]
    [InlineData("2.5", "-3", -0.5)]
    [InlineData("1e20", "1", 1e20)]
    public void Non_integer_increments_add(string start, string delta, double expected)
    {
        var state = Changed(null, Put(T(100, C), $$"""{"n":{{start}}}"""), C, 1);

        state = Changed(state, Increment(T(200, A), $$"""{"n":{{delta}}}""", @base: 1), A, 2);

        Assert.Equal(expected, state.Fields["n"].Value.GetDouble());
    }

    [Fact]
    public void An_increment_of_a_missing_or_removed_field_starts_from_zero()
    {
        var state = Changed(null, Patch(T(100, C), """{"a":1}""", remove: ["gone"]), C, 1);

        state = Changed(state, Increment(T(200, A), """{"n":5,"gone":3}""", @base: 1), A, 2);

        AssertJson("""{"a":1,"n":5,"gone":3}""", state);
        Assert.False(state.Fields["gone"].Removed);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void Concurrent_increments_never_conflict_and_keep_the_later_timestamp(ConflictPolicy policy)
    {
        var rules = RulesFor(policy);
        var state = Changed(null, Put(T(100, C), """{"n":10}"""), C, 1, rules);

        state = Changed(state, Increment(T(300, B), """{"n":5}""", @base: 1), B, 2, rules);
        var outcome = Apply(state, Increment(T(200, A), """{"n":-2}""", @base: 1), A, 3, rules);

        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.Null(outcome.ConflictFields);
        AssertJson("""{"n":13}""", outcome.State);
        Assert.Equal(T(300, B), outcome.State.Fields["n"].Hlc);
    }

    [Fact]
    public void An_increment_of_a_field_that_is_not_a_number_is_rejected_and_changes_nothing()
    {
        var state = Changed(null, Put(T(100, C), """{"n":1,"s":"text"}"""), C, 1);

        // n comes first and is valid: nothing of the mutation may apply.
        var outcome = Apply(state, Increment(T(200, A), """{"n":1,"s":1}""", @base: 1), A, 2);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.Same(state, outcome.State);
        Assert.Contains("'s'", outcome.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"1\"")]
    [InlineData("true")]
    [InlineData("null")]
    [InlineData("[1]")]
    public void An_increment_by_something_other_than_a_number_is_rejected(string delta)
    {
        var state = Changed(null, Put(T(100, C), """{"n":1}"""), C, 1);

        var outcome = Apply(state, Increment(T(200, A), $$"""{"n":{{delta}}}""", @base: 1), A, 2);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.Same(state, outcome.State);
    }

    [Fact]
    public void An_increment_of_an_unknown_document_by_a_non_number_is_rejected()
    {
        var outcome = Apply(null, Increment(T(200, A), """{"n":"x"}"""), A, 1);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.False(outcome.Changed);
    }

    [Theory]
    [InlineData("9223372036854775807", "1")]
    [InlineData("-9223372036854775808", "-1")]
    [InlineData("9223372036854775000", "9223372036854775000")]
    [InlineData("-1", "-9223372036854775808")]
    public void An_integer_increment_that_would_overflow_is_rejected(string start, string delta)
    {
        var state = Changed(null, Put(T(100, C), $$"""{"n":{{start}}}"""), C, 1);

        var outcome = Apply(state, Increment(T(200, A), $$"""{"n":{{delta}}}""", @base: 1), A, 2);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.False(outcome.Changed);
        Assert.Same(state, outcome.State);
    }

    [Theory]
    [InlineData("9223372036854775806", "1", "9223372036854775807")]
    [InlineData("-9223372036854775807", "-1", "-9223372036854775808")]
    [InlineData("-1", "-9223372036854775807", "-9223372036854775808")]
    public void An_integer_increment_up_to_the_limit_applies(string start, string delta, string expected)
    {
        var state = Changed(null, Put(T(100, C), $$"""{"n":{{start}}}"""), C, 1);

        state = Changed(state, Increment(T(200, A), $$"""{"n":{{delta}}}""", @base: 1), A, 2);

        Assert.Equal(expected, state.Fields["n"].Value.GetRawText());
    }

    /// <summary>A double sum that leaves the finite range cannot be written as JSON; it must be refused like an integer overflow, not crash the merge.</summary>
    [Theory]
    [InlineData("1e308", "1e308")]
    [InlineData("-1.5e308", "-1e308")]
    [InlineData("1", "1e400")]
    public void A_non_integer_increment_that_would_overflow_is_rejected(string start, string delta)
    {
        var state = Changed(null, Put(T(100, C), $$"""{"n":{{start}}}"""), C, 1);

        var outcome = Apply(state, Increment(T(200, A), $$"""{"n":{{delta}}}""", @base: 1), A, 2);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.Same(state, outcome.State);
    }

    [Fact]
    public void An_increment_that_removes_fields_is_rejected()
    {
        var state = Changed(null, Put(T(100, C), """{"n":1,"a":2}"""), C, 1);

        var outcome = Apply(state, Increment(T(200, A), """{"n":1}""", @base: 1, remove: ["a"]), A, 2);

        Assert.Equal(MutationStatus.Rejected, outcome.Status);
        Assert.Same(state, outcome.State);
        Assert.Equal(MutationStatus.Rejected, Apply(null, Increment(T(200, A), """{"n":1}""", remove: ["a"]), A, 1).Status);
    }

    // ---- Resolutions ----

    [Fact]
    public void A_resolution_writes_the_chosen_values_even_with_an_older_timestamp_and_keeps_the_higher_one()
    {
        var server = ServerChangedA(Rules(ConflictPolicy.Manual));

        var outcome = DocumentMerge.ApplyResolution(server, Fields("""{"a":"chosen","c":"new"}"""), ["b"], T(150, A), A, 5);

        Assert.True(outcome.Changed);
        Assert.Equal(MutationStatus.Applied, outcome.Status);
        Assert.Equal(5, outcome.State.Revision);
        AssertJson("""{"a":"chosen","c":"new"}""", outcome.State);
        var a = outcome.State.Fields["a"];
        Assert.Equal(T(200, B), a.Hlc);
        Assert.Equal(A, a.Writer);
        Assert.Equal(5, a.Revision);
        Assert.Equal(T(150, A), outcome.State.Fields["c"].Hlc);
        Assert.True(outcome.State.Fields["b"].Removed);
        Assert.Equal(T(150, A), outcome.State.Fields["b"].Hlc);
    }

    [Fact]
    public void A_resolution_of_a_deleted_document_leaves_it_deleted()
    {
        var deleted = Changed(ServerChangedA(), Delete(T(300, A), @base: 2), A, 3);

        var outcome = DocumentMerge.ApplyResolution(deleted, Fields("""{"a":"chosen"}"""), null, T(400, A), A, 4);

        Assert.False(outcome.Changed);
        Assert.Equal(MutationStatus.Merged, outcome.Status);
        Assert.Same(deleted, outcome.State);
    }

    [Fact]
    public void A_resolution_of_an_unknown_document_creates_it()
    {
        var outcome = DocumentMerge.ApplyResolution(null, Fields("""{"a":1}"""), null, T(400, A), A, 4);

        Assert.True(outcome.Changed);
        AssertJson("""{"a":1}""", outcome.State);
        Assert.Equal(4, outcome.State.Revision);
    }

    // ---- Rules ----

    [Fact]
    public void Rules_validate_their_completeness()
    {
        CollectionRules.Default.Validate();
        Assert.Equal(ConflictPolicy.LastWriterWins, CollectionRules.Default.Policy);
        Assert.Equal(DeleteRule.DeleteWins, CollectionRules.Default.Delete);
        Rules(ConflictPolicy.Custom, resolver: Unreachable).Validate();

        Assert.Throws<ArgumentException>(() => Rules(ConflictPolicy.Custom).Validate());
        Assert.Throws<ArgumentException>(() => Rules((ConflictPolicy)42).Validate());
        Assert.Throws<ArgumentException>(() => Rules(ConflictPolicy.LastWriterWins, (DeleteRule)42).Validate());
    }
}
