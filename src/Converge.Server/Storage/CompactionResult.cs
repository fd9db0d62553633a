namespace Converge.Server.Storage;

/// <summary>What a compaction did.</summary>
/// <remarks>Two results are equal when every count is.</remarks>
public sealed record CompactionResult
{
    /// <summary>Gets the deleted documents removed.</summary>
    public required int TombstonesRemoved { get; init; }

    /// <summary>Gets the resolved conflict records removed.</summary>
    public required int ConflictsRemoved { get; init; }

    /// <summary>Gets the scopes whose min valid cursor was raised.</summary>
    public required int ScopesAffected { get; init; }

    /// <summary>Gets the documents and conflict records that stayed and took a new revision, above the raised min valid cursor.</summary>
    public required int ItemsMoved { get; init; }

    /// <summary>Gets the client progress records removed, unused for longer than the client retention.</summary>
    public int ClientsRemoved { get; init; }
}
