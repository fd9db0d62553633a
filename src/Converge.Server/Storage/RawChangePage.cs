using System.Diagnostics.CodeAnalysis;

namespace Converge.Server.Storage;

/// <summary>A store that can read a page of changes with each document's state and each conflict record as the JSON it stores, so a pull sends them as they are.</summary>
/// <remarks>
/// Optional: the server uses it instead of <see cref="ISyncStore.ReadChangesAsync"/> when the store implements it, and
/// writes the JSON into the response without reading it. A store that keeps states as the protocol's JSON
/// (<c>DocumentStateJson</c> writes it) can then answer a pull without building a single document.
/// </remarks>
[Experimental(SyncStoreContract.DiagnosticId)]
public interface IRawChangeReader
{
    /// <summary>Reads, from one snapshot, the changes of a scope after a revision, as <see cref="ISyncStore.ReadChangesAsync"/> does, with each item as its stored JSON.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="after">Only items with a higher revision are read.</param>
    /// <param name="limit">The most items, documents and records together, to return: those with the lowest revisions.</param>
    /// <param name="maxBytes">The most bytes of stored JSON the page holds: it ends before the item that would take it past them, and holds at least one item however large.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The page, each list in revision order, with the scope's revision counter and min valid cursor from the same snapshot.</returns>
    ValueTask<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken);
}

/// <summary>One document of a <see cref="RawChangePage"/>: its keys and its state's JSON as stored.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct RawDocument
{
    /// <summary>Gets the document's revision: its place in the scope's order.</summary>
    public required long Revision { get; init; }

    /// <summary>Gets the document's collection.</summary>
    public required string Collection { get; init; }

    /// <summary>Gets the document's id.</summary>
    public required string Id { get; init; }

    /// <summary>Gets the document's state as the protocol's JSON, sent as it is.</summary>
    public required ReadOnlyMemory<byte> State { get; init; }
}

/// <summary>One conflict record of a <see cref="RawChangePage"/>: its revision and its JSON as stored.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct RawConflict
{
    /// <summary>Gets the record's revision: its place in the scope's order.</summary>
    public required long Revision { get; init; }

    /// <summary>Gets the record as the protocol's JSON, sent as it is.</summary>
    public required ReadOnlyMemory<byte> Record { get; init; }
}

/// <summary>A page of changes whose document states and conflict records are the stored JSON.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public sealed class RawChangePage
{
    /// <summary>Gets the changed documents, in revision order.</summary>
    public required IReadOnlyList<RawDocument> Documents { get; init; }

    /// <summary>Gets the created or resolved conflict records, in revision order.</summary>
    public required IReadOnlyList<RawConflict> Conflicts { get; init; }

    /// <summary>Gets whether items with higher revisions follow the page.</summary>
    public required bool HasMore { get; init; }

    /// <summary>Gets the scope's revision counter.</summary>
    public required long ScopeRevision { get; init; }

    /// <summary>Gets the scope's min valid cursor: the highest revision compaction removed, 0 when none.</summary>
    public required long MinValidCursor { get; init; }
}
