using System.Diagnostics.CodeAnalysis;
using Converge.Protocol.Messages;

namespace Converge.Server.Storage;

/// <summary>A page of a scope's changes, read from one snapshot.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public sealed class ChangePage
{
    /// <summary>Gets the changed documents, each with its whole state, in revision order.</summary>
    public required IReadOnlyList<DocumentChange> Documents { get; init; }

    /// <summary>Gets the created or resolved conflict records, in revision order.</summary>
    public required IReadOnlyList<ConflictRecord> Conflicts { get; init; }

    /// <summary>Gets whether items with higher revisions follow the page.</summary>
    public required bool HasMore { get; init; }

    /// <summary>Gets the scope's revision counter.</summary>
    public required long ScopeRevision { get; init; }

    /// <summary>Gets the scope's min valid cursor: the highest revision compaction removed, 0 when none.</summary>
    public required long MinValidCursor { get; init; }
}

/// <summary>A page of a scope's open conflict records.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public sealed class ConflictPage
{
    /// <summary>Gets the records, in revision order.</summary>
    public required IReadOnlyList<ConflictRecord> Conflicts { get; init; }

    /// <summary>Gets whether open records with higher revisions follow the page.</summary>
    public required bool HasMore { get; init; }
}
