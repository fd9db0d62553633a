using System.Diagnostics.CodeAnalysis;
using Converge.Protocol;

namespace Converge.Server.Storage;

/// <summary>How far a client got: the id of the last mutation applied for it, the timestamp that mutation carried, and the timestamps of the mutations its last push applied.</summary>
/// <param name="LastMutationId">The id; 0 when none was applied.</param>
/// <param name="LastHlc">The timestamp the client stamped that mutation with (before any re-stamp).</param>
/// <remarks>
/// A retried push carries each mutation with the id and timestamp it had. A mutation whose id was applied already but
/// whose timestamp differs from the one applied under that id (<see cref="Recent"/>), or, beyond that window, is newer
/// than <see cref="LastHlc"/>, is not a retry: the client reuses ids (its store was restored from a backup, or copied
/// to another device), and the server refuses it rather than drop it as a duplicate.
/// </remarks>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct ClientProgress(long LastMutationId, HybridTimestamp LastHlc)
{
    /// <summary>Gets the progress of a client nothing was applied for.</summary>
    public static ClientProgress None => default;

    /// <summary>Gets the ids and timestamps of the mutations the client's last push applied, ids increasing.</summary>
    public IReadOnlyList<AppliedMutation> Recent
    {
        get => _recent ?? [];
        init => _recent = value;
    }

    private readonly IReadOnlyList<AppliedMutation>? _recent;
}

/// <summary>A mutation the server applied for a client: its id and the timestamp the client gave it.</summary>
/// <param name="Id">The mutation's id.</param>
/// <param name="Hlc">Its timestamp, before any re-stamp.</param>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct AppliedMutation(long Id, HybridTimestamp Hlc);
