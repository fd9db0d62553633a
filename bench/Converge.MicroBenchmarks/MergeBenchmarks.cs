using BenchmarkDotNet.Attributes;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.MicroBenchmarks;

/// <summary>
/// <see cref="DocumentMerge.Apply"/> of a patch of two fields (title and done) of a four-field document: the server runs
/// it once per mutation of every push, inside the push's transaction.
/// </summary>
/// <remarks>
/// Two cases: the patch's writer had seen the stored revision (nothing concurrent, the usual push), and it had not,
/// so both patched fields are concurrent edits that last-writer-wins decides field by field.
/// </remarks>
[MemoryDiagnoser]
public class MergeBenchmarks
{
    private readonly DocumentState _stored = Documents.Stored();
    private readonly CollectionRules _rules = CollectionRules.Default;
    private Mutation _patch = null!;
    private Mutation _concurrentPatch = null!;

    /// <summary>Builds the stored state and the two patches.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _patch = new Mutation
        {
            Id = 7,
            Scope = "team:1",
            Collection = "todos",
            DocumentId = "t42",
            Kind = MutationKind.Patch,
            Hlc = new HybridTimestamp(Documents.Physical + 5_000, 0, Documents.WriterB),
            BaseRevision = Documents.Revision,
            Fields = Documents.Values("""{"title":"Buy milk, bread and eggs","done":true}"""),
        };
        _concurrentPatch = _patch with { BaseRevision = Documents.Revision - 1 };
    }

    /// <summary>A patch whose writer had seen the stored revision.</summary>
    [Benchmark(Baseline = true)]
    public MergeOutcome Patch() => DocumentMerge.Apply(_stored, _patch, Documents.WriterB, Documents.Revision + 1, _rules);

    /// <summary>The same patch concurrent with the stored write: last-writer-wins decides both fields.</summary>
    [Benchmark]
    public MergeOutcome ConcurrentPatch() => DocumentMerge.Apply(_stored, _concurrentPatch, Documents.WriterB, Documents.Revision + 1, _rules);
}
