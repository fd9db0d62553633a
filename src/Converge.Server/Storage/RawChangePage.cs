namespace Converge.Server.Storage;

/// <summary>A store that can read a page of changes with each document's state as stored JSON, so a pull sends it as it is.</summary>
internal interface IRawChangeReader
{
    /// <summary>Reads, from one snapshot, the changes of a scope after a revision, as <see cref="ISyncStore.ReadChangesAsync"/> does.</summary>
    ValueTask<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken);
}

/// <summary>One document of a <see cref="RawChangePage"/>: its keys and its state's JSON as stored.</summary>
internal readonly record struct RawDocument(long Revision, string Collection, string Id, byte[] State);

/// <summary>One conflict record of a <see cref="RawChangePage"/>: its revision and its JSON as stored.</summary>
internal readonly record struct RawConflict(long Revision, byte[] Record);

/// <summary>A page of changes whose document states and conflict records are the stored JSON.</summary>
internal sealed class RawChangePage
{
    public List<RawDocument> Documents { get; } = [];

    public List<RawConflict> Conflicts { get; } = [];

    public bool HasMore { get; set; }

    public long ScopeRevision { get; set; }

    public long MinValidCursor { get; set; }
}
