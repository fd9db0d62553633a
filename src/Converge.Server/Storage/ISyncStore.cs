using System.Diagnostics.CodeAnalysis;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Server.Storage;

/// <summary>Where the server keeps documents, conflict records, scope revisions and per-client progress.</summary>
/// <remarks>
/// <para>
/// The server's merge logic lives outside the store; a store only reads and writes. Writes go through one
/// <see cref="ISyncTransaction"/> at a time per scope: an implementation must make sure that, within a scope,
/// commit order equals revision order, so a reader never passes a revision that commits later (the SQLite store has a
/// single writer; a PostgreSQL store would lock the scope's row).
/// </para>
/// <para>
/// Register another implementation as a singleton <see cref="ISyncStore"/>, before or after <c>AddConvergeServer</c>: the
/// last one registered is the server's store. The contract is experimental (<c>CONVERGE0002</c>): implementing a store
/// is supported, but the contract may change in a minor version, and <see cref="ContractVersion"/> then tells the server
/// at start that the store was built for another one.
/// </para>
/// </remarks>
[Experimental(SyncStoreContract.DiagnosticId)]
public interface ISyncStore
{
    /// <summary>Gets the version of the store contract the store implements: <see cref="SyncStoreContract.Version"/> as it was when the store was built.</summary>
    /// <value>Return <see cref="SyncStoreContract.Version"/>: a constant, so the compiler copies its value into the store's own assembly.</value>
    /// <remarks>
    /// The server compares it with its own <see cref="SyncStoreContract.Version"/> before it initializes the store, and
    /// refuses to start when they differ, with a message that names the packages to update: a store built for another
    /// version of Converge.Server would otherwise fail later, in the middle of a push.
    /// </remarks>
    int ContractVersion { get; }

    /// <summary>Creates or checks the schema; called once, before any other member.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>A task that completes when the store is ready.</returns>
    /// <exception cref="InvalidOperationException">The store was made by a newer version, or is in use by another server.</exception>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Reads the last timestamp of the server's hybrid clock, which also carries the server's node id.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>The timestamp, or <see langword="null"/> for a new store.</returns>
    Task<HybridTimestamp?> ReadClockAsync(CancellationToken cancellationToken);

    /// <summary>Reads the store's epoch: the id of its history, made when the store was created and made anew by <see cref="RotateEpochAsync"/>.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>The epoch, a short opaque text.</returns>
    /// <remarks>
    /// Pull responses carry it. A client keeps it with its cursors; when a pull answers with another epoch, the client's
    /// cursors belong to another history (the store was restored from a backup), and it downloads the scope again.
    /// Called on every pull: a store keeps the epoch in memory.
    /// </remarks>
    Task<string> ReadEpochAsync(CancellationToken cancellationToken);

    /// <summary>Makes a new random epoch and stores it durably, so every client downloads its scopes again at its next pull; for a store restored from a backup.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>The new epoch.</returns>
    Task<string> RotateEpochAsync(CancellationToken cancellationToken);

    /// <summary>Begins a write transaction; it waits while another transaction that could conflict is open.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>The transaction; disposing it without <see cref="ISyncTransaction.CommitAsync"/> rolls it back.</returns>
    Task<ISyncTransaction> BeginAsync(CancellationToken cancellationToken);

    /// <summary>Reads, from one consistent snapshot, the changes of a scope after a revision: documents and conflict records.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="after">Only items with a higher revision are read.</param>
    /// <param name="limit">The most items, documents and records together, to return: those with the lowest revisions.</param>
    /// <param name="maxBytes">The most bytes of stored JSON the page holds: it ends before the item that would take it past them, and holds at least one item however large.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The page, each list in revision order, with the scope's revision counter and min valid cursor from the same snapshot.</returns>
    Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken);

    /// <summary>Reads a page of the open conflict records of a scope, in revision order.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="after">Only records with a higher revision are read.</param>
    /// <param name="limit">The most records to return.</param>
    /// <param name="maxBytes">The most bytes of stored JSON the page holds, as for <see cref="ReadChangesAsync"/>.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The page.</returns>
    Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken);

    /// <summary>Reads one conflict record.</summary>
    /// <param name="id">The conflict's id.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The record, or <see langword="null"/> when there is none.</returns>
    Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken);

    /// <summary>Removes tombstones deleted, and resolved conflict records resolved, before a time, raising each affected scope's min valid cursor to the highest revision removed; and removes client progress records not used since another time.</summary>
    /// <remarks>
    /// Every item of the scope that stays at or below the new min valid cursor (a live document, a young tombstone, an
    /// open conflict) takes a new revision of the scope in the same transaction, so no item ever sits at or below the
    /// min valid cursor: a download from the start of the scope then never holds a cursor that a pull would reset.
    /// </remarks>
    /// <param name="removeBefore">The cutoff of tombstones and resolved conflict records.</param>
    /// <param name="clientsUnusedBefore">The cutoff of client progress records: those last used (<see cref="ISyncTransaction.WriteClientProgressAsync"/>) before it go.</param>
    /// <param name="cancellationToken">Stops the compaction between batches; what was removed stays removed.</param>
    /// <returns>What was removed.</returns>
    Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken);

    /// <summary>Runs a trivial query, to tell whether the store answers.</summary>
    /// <param name="cancellationToken">Stops the query.</param>
    /// <returns>A task that fails when the store does not answer.</returns>
    Task CheckHealthAsync(CancellationToken cancellationToken);
}
