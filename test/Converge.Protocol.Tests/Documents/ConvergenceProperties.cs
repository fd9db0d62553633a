using System.Text;
using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using CsCheck;

namespace Converge.Protocol.Tests.Documents;

/// <summary>
/// Replicas edit offline from a shared synced state, then their streams reach a <see cref="MergeServer"/> in random
/// interleavings (each replica's own stream in order, retries included); under LastWriterWins the server must end with
/// the same documents whatever the interleaving.
/// </summary>
public class ConvergenceProperties
{
    private const int DocumentCount = 3;
    private static readonly string[] ValueFields = ["a", "b", "c"];
    private static readonly string[] CounterFields = ["n", "m"];
    private static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private const ulong SeedWriter = 0x100;

    /// <summary>Few distinct values, so equal values on both sides happen.</summary>
    private static readonly JsonElement[] Values = [Doc.V("1"), Doc.V("2"), Doc.V("\"x\""), Doc.V("null"), Doc.V("""{"k":[1,2]}""")];

    /// <summary>
    /// One offline edit. <see cref="Slots"/> holds, per value field, 0 (untouched, or absent from a put), 1 (removed by a
    /// patch, absent from a put) or 2 + an index into <see cref="Values"/>.
    /// </summary>
    internal sealed record Edit(MutationKind Kind, int Doc, int[] Slots, long Delta, bool BothCounters, int AdvanceMs)
    {
        public override string ToString() =>
            $"{Kind} d{Doc} [{string.Join(",", Slots)}] {(Kind == MutationKind.Increment ? $"+{Delta}{(BothCounters ? " (n,m)" : "")} " : "")}after {AdvanceMs}ms";
    }

    internal sealed record Replica(int SkewMs, Edit[] Edits)
    {
        public override string ToString() => $"skew {SkewMs}ms: {string.Join("; ", Edits.Select(e => e.ToString()))}";
    }

    /// <summary>A generated case: the edits that made the shared state, the replicas, and the seeds of the interleavings.</summary>
    internal sealed record Case(Edit[] Seed, Replica[] Replicas, int[] Orders)
    {
        public override string ToString() =>
            $"seed: {string.Join("; ", Seed.Select(e => e.ToString()))}\n" + string.Join("\n", Replicas.Select((r, i) => $"replica {i + 1}: {r}")) + $"\norders: {string.Join(",", Orders)}";
    }

    private static Gen<Edit> Edits(Gen<MutationKind> kinds, Gen<long> deltas) => Gen.Select(
        kinds, Gen.Int[0, DocumentCount - 1], Gen.Int[0, 1 + Values.Length].Array[ValueFields.Length], deltas, Gen.Bool, Gen.Int[0, 30],
        (kind, doc, slots, delta, both, advance) => new Edit(kind, doc, slots, delta, both, advance));

    private static Gen<Case> Cases(Gen<Edit> edits) => Gen.Select(
        edits.Array[0, 8],
        Gen.Select(Gen.Int[-3_000, 3_000], edits.Array[1, 8], (skew, e) => new Replica(skew, e)).Array[2, 5],
        Gen.Int.Array[3],
        (seed, replicas, orders) => new Case(seed, replicas, orders));

    private static readonly Gen<MutationKind> AllKinds = Gen.Frequency(
        (3, MutationKind.Put), (4, MutationKind.Patch), (2, MutationKind.Delete), (2, MutationKind.Increment));

    private static readonly Gen<long> SmallDeltas = Gen.Long[-3, 3];

    [Theory]
    [InlineData(DeleteRule.DeleteWins)]
    [InlineData(DeleteRule.UpdateWins)]
    public void LastWriterWins_converges_whatever_the_interleaving_of_offline_puts_patches_deletes_and_increments(DeleteRule rule) =>
        Cases(Edits(AllKinds, SmallDeltas)).Sample(c => AssertSameEverywhere(c, new CollectionRules { Delete = rule }), print: c => c.ToString());

    [Fact]
    public void LastWriterWins_converges_whatever_the_interleaving_of_offline_puts_and_patches() =>
        Cases(Edits(Gen.OneOf(MutationKind.Put, MutationKind.Patch), SmallDeltas)).Sample(c => AssertSameEverywhere(c, CollectionRules.Default), print: c => c.ToString());

    [Fact]
    public void Increments_only_documents_converge_to_the_exact_sum() =>
        Cases(Edits(Gen.Const(MutationKind.Increment), Gen.Long[-1_000_000_000_000_000, 1_000_000_000_000_000])).Sample(
            c =>
            {
                var results = AssertSameEverywhere(c, CollectionRules.Default);
                var expected = new Dictionary<(int Doc, string Field), long>();
                foreach (var edit in c.Seed.Concat(c.Replicas.SelectMany(r => r.Edits)))
                {
                    foreach (var field in edit.BothCounters ? CounterFields : CounterFields[..1])
                    {
                        expected[(edit.Doc, field)] = expected.GetValueOrDefault((edit.Doc, field)) + Delta(edit);
                    }
                }

                foreach (var ((doc, field), sum) in expected)
                {
                    var value = results[$"d{doc}"].Fields[field].Value;
                    Assert.True(value.TryGetInt64(out var actual) && actual == sum, $"d{doc}.{field} is {value.GetRawText()}, expected {sum}");
                }
            },
            print: c => c.ToString());

    /// <summary>Runs every interleaving of the case and asserts they end with the same documents; returns the first run's.</summary>
    private static IReadOnlyDictionary<string, DocumentState> AssertSameEverywhere(Case c, CollectionRules rules)
    {
        var streams = Build(c, rules, out var initial);
        MergeServer? first = null;
        foreach (var seed in c.Orders)
        {
            var server = initial();
            var schedule = Schedule(streams.Select(s => s.Mutations.Count).ToArray(), seed);
            foreach (var (replica, index) in schedule)
            {
                server.Push(streams[replica].Node, streams[replica].Mutations[index]);
            }

            if (first is null)
            {
                first = server;
                continue;
            }

            var names = first.Documents.Keys.Union(server.Documents.Keys).Order(StringComparer.Ordinal);
            foreach (var name in names)
            {
                var x = first.Documents.GetValueOrDefault(name);
                var y = server.Documents.GetValueOrDefault(name);
                if (x is null || y is null || !x.SameContentAs(y))
                {
                    var report = new StringBuilder()
                        .AppendLine($"Document {name} differs between two interleavings:")
                        .AppendLine($"  first:  {Doc.Describe(x)}")
                        .AppendLine($"  second: {Doc.Describe(y)}")
                        .AppendLine("Mutations:");
                    foreach (var stream in streams)
                    {
                        foreach (var m in stream.Mutations)
                        {
                            report.AppendLine($"  {Describe(stream.Node, m)}");
                        }
                    }

                    report.AppendLine("First interleaving:");
                    first.Log.ForEach(line => report.AppendLine("  " + line));
                    report.AppendLine("Second interleaving:");
                    server.Log.ForEach(line => report.AppendLine("  " + line));
                    Assert.Fail(report.ToString());
                }
            }
        }

        return first!.Documents;
    }

    private sealed record ReplicaStream(ulong Node, List<Mutation> Mutations);

    /// <summary>
    /// Builds the shared state (the seed edits, applied online by one writer) and every replica's offline stream. The
    /// replicas synced that state: their clocks received the server's, and each mutation's base is the revision of its
    /// document they pulled, the same for all their offline edits of it.
    /// </summary>
    private static List<ReplicaStream> Build(Case c, CollectionRules rules, out Func<MergeServer> initial)
    {
        var seedTime = new WallClock(Start);
        var seedClock = new HybridClock(SeedWriter, seedTime);
        var seedLog = new List<Mutation>();
        var shared = new MergeServer(rules);
        var seedReplica = new LocalCopy(new Dictionary<string, DocumentState>());
        foreach (var edit in c.Seed)
        {
            seedTime.Move(TimeSpan.FromMilliseconds(edit.AdvanceMs));
            var docId = $"d{edit.Doc}";
            var mutation = seedReplica.Make(edit, seedClock.Now(), seedLog.Count + 1, shared.Documents.GetValueOrDefault(docId)?.Revision ?? 0);
            seedLog.Add(mutation);
            shared.Push(SeedWriter, mutation);
            // The seed writer is online: its copy follows the server's.
            seedReplica = new LocalCopy(shared.Documents);
        }

        initial = () =>
        {
            var server = new MergeServer(rules);
            foreach (var m in seedLog)
            {
                server.Push(SeedWriter, m);
            }

            server.Log.Clear();
            return server;
        };

        var serverClock = seedClock.Now();
        var streams = new List<ReplicaStream>();
        for (var i = 0; i < c.Replicas.Length; i++)
        {
            var node = (ulong)(i + 1);
            var time = new WallClock(seedTime.Now + TimeSpan.FromMilliseconds(c.Replicas[i].SkewMs));
            var clock = new HybridClock(node, time);
            clock.Receive(serverClock);
            var copy = new LocalCopy(shared.Documents);
            var mutations = new List<Mutation>();
            foreach (var edit in c.Replicas[i].Edits)
            {
                time.Move(TimeSpan.FromMilliseconds(edit.AdvanceMs));
                var docId = $"d{edit.Doc}";
                mutations.Add(copy.Make(edit, clock.Now(), mutations.Count + 1, shared.Documents.GetValueOrDefault(docId)?.Revision ?? 0));
            }

            streams.Add(new ReplicaStream(node, mutations));
        }

        return streams;
    }

    /// <summary>What a replica knows of its documents: which exist, and their live fields; enough to write sensible mutations.</summary>
    private sealed class LocalCopy
    {
        private readonly Dictionary<string, HashSet<string>?> _live = new(StringComparer.Ordinal);

        public LocalCopy(IReadOnlyDictionary<string, DocumentState> synced)
        {
            foreach (var (id, state) in synced)
            {
                _live[id] = state.Deleted ? null : [.. state.Fields.Where(f => !f.Value.Removed).Select(f => f.Key)];
            }
        }

        public Mutation Make(Edit edit, HybridTimestamp hlc, long id, long baseRevision)
        {
            var docId = $"d{edit.Doc}";
            var known = _live.TryGetValue(docId, out var live);
            var exists = known && live is not null;
            live ??= [];
            var kind = edit.Kind;
            if (!exists && kind != MutationKind.Put && !(kind == MutationKind.Increment && !known))
            {
                // An application edits or deletes documents it has; one it lacks (or deleted) it creates with a put, or,
                // for a counter it never saw, with an increment.
                kind = MutationKind.Put;
            }

            var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            var remove = new List<string>();
            switch (kind)
            {
                case MutationKind.Put:
                    for (var f = 0; f < ValueFields.Length; f++)
                    {
                        if (edit.Slots[f] >= 2)
                        {
                            fields[ValueFields[f]] = Values[edit.Slots[f] - 2];
                        }
                        else if (live.Contains(ValueFields[f]))
                        {
                            remove.Add(ValueFields[f]);
                        }
                    }

                    live = [.. live.Where(CounterFields.Contains), .. fields.Keys];
                    break;
                case MutationKind.Patch:
                    for (var f = 0; f < ValueFields.Length; f++)
                    {
                        if (edit.Slots[f] >= 2)
                        {
                            fields[ValueFields[f]] = Values[edit.Slots[f] - 2];
                            live.Add(ValueFields[f]);
                        }
                        else if (edit.Slots[f] == 1 && live.Remove(ValueFields[f]))
                        {
                            remove.Add(ValueFields[f]);
                        }
                    }

                    if (fields.Count + remove.Count == 0)
                    {
                        fields[ValueFields[edit.Doc % ValueFields.Length]] = Values[edit.Slots.Sum() % Values.Length];
                        live.Add(ValueFields[edit.Doc % ValueFields.Length]);
                    }

                    break;
                case MutationKind.Increment:
                    foreach (var counter in edit.BothCounters ? CounterFields : CounterFields[..1])
                    {
                        fields[counter] = Doc.V(Delta(edit).ToString(System.Globalization.CultureInfo.InvariantCulture));
                        live.Add(counter);
                    }

                    break;
                case MutationKind.Delete:
                    live = null;
                    break;
            }

            _live[docId] = live;
            return new Mutation
            {
                Id = id,
                Scope = "s",
                Collection = "c",
                DocumentId = docId,
                Kind = kind,
                Hlc = hlc,
                BaseRevision = baseRevision,
                Fields = kind is MutationKind.Delete ? null : fields,
                Remove = remove.Count == 0 ? null : remove,
            };
        }
    }

    private static long Delta(Edit edit) => edit.Delta == 0 ? 1 : edit.Delta;

    /// <summary>
    /// A random delivery: replicas push batches of their next mutations in turn, each replica's in order; now and then a
    /// replica whose response was lost pushes again from an earlier mutation (a retry), and the server sees duplicates.
    /// </summary>
    private static List<(int Replica, int Index)> Schedule(int[] lengths, int seed)
    {
        var random = new Random(seed);
        var next = new int[lengths.Length];
        var schedule = new List<(int, int)>();
        while (true)
        {
            var pending = Enumerable.Range(0, lengths.Length).Where(r => next[r] < lengths[r]).ToArray();
            if (pending.Length == 0)
            {
                break;
            }

            var replica = pending[random.Next(pending.Length)];
            var from = next[replica] > 0 && random.Next(4) == 0 ? random.Next(next[replica]) : next[replica];
            var to = Math.Min(lengths[replica], next[replica] + random.Next(1, 4));
            for (var i = from; i < to; i++)
            {
                schedule.Add((replica, i));
            }

            next[replica] = to;
        }

        // A last retry of a whole stream, after everything else arrived.
        var last = random.Next(lengths.Length);
        for (var i = 0; i < lengths[last]; i++)
        {
            schedule.Add((last, i));
        }

        return schedule;
    }

    private static string Describe(ulong node, Mutation m) =>
        $"{node:x}#{m.Id} {m.Kind} {m.DocumentId} base {m.BaseRevision} hlc {m.Hlc.Physical}.{m.Hlc.Counter}.{m.Hlc.Node:x}"
        + (m.Fields is { Count: > 0 } ? " " + string.Join(",", m.Fields.Select(f => $"{f.Key}={f.Value.GetRawText()}")) : "")
        + (m.Remove is { Count: > 0 } ? " -" + string.Join(",-", m.Remove) : "");
}
