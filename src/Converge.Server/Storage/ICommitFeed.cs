using System.Diagnostics.CodeAnalysis;

namespace Converge.Server.Storage;

/// <summary>
/// A store that several server nodes share tells every node of each commit, so each node's live clients get every
/// change, whichever node committed it (PostgreSQL: <c>NOTIFY</c> inside the transaction, <c>LISTEN</c> on each node).
/// </summary>
/// <remarks>
/// A node hands its own commits to its live clients directly; it uses the feed for the other nodes' commits: for a
/// scope its clients follow, it reads the changes after <see cref="CommitNotice.After"/> as a pull would and streams them.
/// A notice carries only what a node needs to fetch the change, never documents.
/// </remarks>
[Experimental(SyncStoreContract.DiagnosticId)]
public interface ICommitFeed
{
    /// <summary>Announces a commit's changes of one scope; called inside the transaction, before it commits.</summary>
    /// <param name="transaction">The store's transaction that makes the changes.</param>
    /// <param name="notice">What changed.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the announcement is part of the transaction: delivered when, and only if, it commits, in commit order.</returns>
    ValueTask AnnounceAsync(ISyncTransaction transaction, CommitNotice notice, CancellationToken cancellationToken);

    /// <summary>Listens for announced commits of every node, in commit order, until cancelled.</summary>
    /// <param name="cancellationToken">Stops listening.</param>
    /// <returns>
    /// The notices. After the listening connection was lost and made again, one notice with <see cref="CommitNotice.Missed"/>
    /// set says that commits may have gone unannounced meanwhile; the node then tells its clients to pull.
    /// </returns>
    IAsyncEnumerable<CommitNotice> ListenAsync(CancellationToken cancellationToken);
}

/// <summary>A commit's changes of one scope: the scope's revisions after <see cref="After"/> up to <see cref="Cursor"/>.</summary>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct CommitNotice
{
    /// <summary>Gets a notice that commits may have been missed (the feed's connection was lost).</summary>
    public static CommitNotice Lost { get; } = new() { Node = "", Scope = "", After = 0, Cursor = 0, Missed = true };

    /// <summary>Gets the id of the server node that committed it.</summary>
    public required string Node { get; init; }

    /// <summary>Gets the scope.</summary>
    public required string Scope { get; init; }

    /// <summary>Gets the scope's revision before the commit.</summary>
    public required long After { get; init; }

    /// <summary>Gets the scope's revision after it.</summary>
    public required long Cursor { get; init; }

    /// <summary>Gets whether this notice stands for commits that may have been missed, rather than for one commit.</summary>
    public bool Missed { get; init; }
}
