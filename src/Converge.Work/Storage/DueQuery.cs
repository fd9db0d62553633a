using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>What the scheduler asks a store for when it claims: which due work items to read.</summary>
[Experimental(WorkStoreContract.DiagnosticId)]
public sealed class DueQuery
{
    /// <summary>Gets the batch time, in Unix milliseconds: work items due at or before it are due.</summary>
    public required long Now { get; init; }

    /// <summary>Gets the constraints the device does not meet now: work items that require any of them are left out.</summary>
    public required ConstraintBits Unmet { get; init; }

    /// <summary>Gets the most rows to return.</summary>
    public required int Limit { get; init; }

    /// <summary>Gets the ids of the work items this node runs; left out.</summary>
    public required IReadOnlySet<Guid> Running { get; init; }

    /// <summary>Gets, on a shared store, the worker names this node can run (the rest is left to nodes that can); <see langword="null"/> for any.</summary>
    public IReadOnlyCollection<string>? Workers { get; init; }
}
