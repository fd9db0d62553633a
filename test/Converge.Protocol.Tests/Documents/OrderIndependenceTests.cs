using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using static Converge.Protocol.Tests.Documents.Doc;

namespace Converge.Protocol.Tests.Documents;

/// <summary>
/// Small, fixed cases of the convergence property (see <see cref="ConvergenceProperties"/>): the same offline writes,
/// delivered in two orders that keep each replica's own order, must leave the same document.
/// </summary>
public class OrderIndependenceTests
{
    private sealed record Write(ulong Writer, Mutation Mutation);

    private const ulong Origin = 0xF;

    /// <summary>The document was put by another replica at revision 1 and every replica synced it (base 1).</summary>
    private static DocumentState Deliver(CollectionRules rules, string synced, params Write[] writes)
    {
        var server = new MergeServer(rules);
        server.Push(Origin, Put(T(100, Origin), synced));
        var ids = new Dictionary<ulong, long>();
        foreach (var (writer, mutation) in writes)
        {
            ids[writer] = ids.GetValueOrDefault(writer) + 1;
            server.Push(writer, mutation with { Id = ids[writer] });
        }

        return server.Documents["d1"];
    }

    private static void AssertSame(DocumentState x, DocumentState y) => Assert.True(x.SameContentAs(y), $"{Describe(x)}\n  vs\n{Describe(y)}");

    private static CollectionRules Lww(DeleteRule rule) => new() { Delete = rule };

    [Fact]
    public void DeleteWins_a_second_concurrent_delete_of_a_tombstone_is_not_forgotten_by_a_later_revival()
    {
        // A deletes then re-creates the document offline; B, also offline, deletes it. B's delete is concurrent with A's
        // put, so under DeleteWins the document ends deleted, whichever of the deletes reaches the server first.
        var rules = Lww(DeleteRule.DeleteWins);
        var aDelete = new Write(A, Delete(T(150, A), @base: 1));
        var aPut = new Write(A, Put(T(160, A), """{"x":1}""", @base: 1));
        var bDelete = new Write(B, Delete(T(200, B), @base: 1));

        var bLast = Deliver(rules, """{"a":0}""", aDelete, aPut, bDelete);
        var bBetween = Deliver(rules, """{"a":0}""", aDelete, bDelete, aPut);
        var bFirst = Deliver(rules, """{"a":0}""", bDelete, aDelete, aPut);

        Assert.True(bLast.Deleted);
        Assert.True(bFirst.Deleted);
        AssertSame(bLast, bBetween);
    }

    [Fact]
    public void DeleteWins_two_replicas_that_each_delete_and_recreate_end_the_same_in_any_order()
    {
        var rules = Lww(DeleteRule.DeleteWins);
        var aDelete = new Write(A, Delete(T(150, A), @base: 1));
        var aPut = new Write(A, Put(T(160, A), """{"x":"A"}""", @base: 1));
        var bDelete = new Write(B, Delete(T(200, B), @base: 1));
        var bPut = new Write(B, Put(T(210, B), """{"x":"B"}""", @base: 1));

        var aThenB = Deliver(rules, """{"a":0}""", aDelete, aPut, bDelete, bPut);
        var interleaved = Deliver(rules, """{"a":0}""", aDelete, bDelete, aPut, bPut);

        AssertSame(aThenB, interleaved);
    }

    [Fact]
    public void UpdateWins_an_update_overwritten_by_the_deleter_still_wins_over_its_delete()
    {
        // B's update is concurrent with A's delete, so under UpdateWins the document must stay; A's own later write
        // of the same field (which wins by timestamp) must not hide B's update from the delete.
        var rules = Lww(DeleteRule.UpdateWins);
        var bPatch = new Write(B, Patch(T(200, B), """{"a":1}""", @base: 1));
        var aPatch = new Write(A, Patch(T(300, A), """{"a":2}""", @base: 1));
        var aDelete = new Write(A, Delete(T(310, A), @base: 1));

        var updateFirst = Deliver(rules, """{"a":0}""", bPatch, aPatch, aDelete);
        var updateLast = Deliver(rules, """{"a":0}""", aPatch, aDelete, bPatch);

        Assert.False(updateLast.Deleted);
        AssertSame(updateLast, updateFirst);
    }

    [Fact]
    public void UpdateWins_an_update_that_lost_by_timestamp_still_wins_over_a_concurrent_delete()
    {
        var rules = Lww(DeleteRule.UpdateWins);
        var aPatch = new Write(A, Patch(T(300, A), """{"a":2}""", @base: 1));
        var aDelete = new Write(A, Delete(T(310, A), @base: 1));
        var bPatch = new Write(B, Patch(T(200, B), """{"a":1}""", @base: 1));

        var updateBetween = Deliver(rules, """{"a":0}""", aPatch, bPatch, aDelete);
        var updateLast = Deliver(rules, """{"a":0}""", aPatch, aDelete, bPatch);

        Assert.False(updateLast.Deleted);
        AssertSame(updateLast, updateBetween);
    }

    [Theory]
    [InlineData(DeleteRule.DeleteWins)]
    [InlineData(DeleteRule.UpdateWins)]
    public void A_revival_and_a_concurrent_update_of_another_field_end_the_same_in_any_order(DeleteRule rule)
    {
        var rules = Lww(rule);
        var aDelete = new Write(A, Delete(T(150, A), @base: 1));
        var aPut = new Write(A, Put(T(160, A), """{"x":1}""", @base: 1));
        var bPatch = new Write(B, Patch(T(200, B), """{"y":2}""", @base: 1));

        var patchFirst = Deliver(rules, """{"z":0}""", bPatch, aDelete, aPut);
        var patchLast = Deliver(rules, """{"z":0}""", aDelete, aPut, bPatch);

        AssertSame(patchFirst, patchLast);
    }

    /// <summary>
    /// The documentation promises order independence "for increments"; an increment and a write of the same field are
    /// not: adding to a value and replacing it do not commute.
    /// </summary>
    [Fact]
    public void An_increment_and_a_concurrent_write_of_the_same_field_depend_on_the_order_as_documented()
    {
        // docs/protocol.md: a field is either a counter (only increments) or a value (only writes). Adding and
        // replacing do not commute, so mixing them on one field makes the result depend on the order of arrival.
        var rules = CollectionRules.Default;
        var bSet = new Write(B, Patch(T(200, B), """{"n":7}""", @base: 1));
        var aAdd = new Write(A, Increment(T(100, A), """{"n":1}""", @base: 1));

        var setFirst = Deliver(rules, """{"n":0}""", bSet, aAdd);
        var addFirst = Deliver(rules, """{"n":0}""", aAdd, bSet);

        Assert.Equal(8, setFirst.Fields["n"].Value.GetInt64());
        Assert.Equal(7, addFirst.Fields["n"].Value.GetInt64());
    }

    /// <summary>Double addition is not associative: (0.1 + 0.2) + 0.3 is 0.6000000000000001, 0.1 + (0.2 + 0.3) is 0.6.</summary>
    [Fact]
    public void Non_integer_increments_end_the_same_in_any_order()
    {
        var rules = CollectionRules.Default;
        var a = new Write(A, Increment(T(200, A), """{"n":0.1}""", @base: 1));
        var b = new Write(B, Increment(T(200, B), """{"n":0.2}""", @base: 1));
        var c = new Write(C, Increment(T(200, C), """{"n":0.3}""", @base: 1));

        var abc = Deliver(rules, """{"n":0}""", a, b, c);
        var cba = Deliver(rules, """{"n":0}""", c, b, a);

        AssertSame(abc, cba);
    }
}
