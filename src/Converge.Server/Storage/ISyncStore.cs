using Converge.Protocol;
using Converge.Protocol.Documents;
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
/// <para>Register another implementation as a singleton <see cref="ISyncStore"/> before calling <c>AddConvergeServer</c>.</para>
/// </remarks>
public interface ISyncStore
{
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

/// <summary>One write transaction of an <see cref="ISyncStore"/>.</summary>
/// <remarks>Not thread-safe: one caller uses it at a time. Disposing without committing rolls everything back.</remarks>
public interface ISyncTransaction : IAsyncDisposable
{
    /// <summary>Reads how far a client of a principal got: the id and timestamp of the last mutation applied for it.</summary>
    /// <param name="principal">The principal's stable key, so one principal cannot spend another's mutation ids.</param>
    /// <param name="clientId">The client's replica id.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The progress; <see cref="ClientProgress.None"/> when nothing was applied.</returns>
    ValueTask<ClientProgress> ReadClientProgressAsync(string principal, string clientId, CancellationToken cancellationToken);

    /// <summary>Reads how far a client got under keys its principal had before, without creating or locking anything: the record with the highest mutation id among them.</summary>
    /// <param name="formerPrincipals">The keys, as a store migrated them (records of an earlier key scheme are never written again).</param>
    /// <param name="clientId">The client's replica id.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The progress; <see cref="ClientProgress.None"/> when there is none.</returns>
    /// <remarks>
    /// The server calls it when a client has no progress under its principal's key, and writes what it found under that
    /// key, so a device that upgraded with a push whose answer was lost still gets <c>duplicate</c> for it.
    /// </remarks>
    ValueTask<ClientProgress> ReadFormerClientProgressAsync(IReadOnlyList<string> formerPrincipals, string clientId, CancellationToken cancellationToken);

    /// <summary>Writes how far a client of a principal got, and when it was last used.</summary>
    /// <param name="principal">The principal's stable key.</param>
    /// <param name="clientId">The client's replica id.</param>
    /// <param name="progress">The id and timestamp of the last mutation applied.</param>
    /// <param name="usedAt">When the client pushed; compaction removes records unused for longer than the client retention.</param>
    /// <param name="cancellationToken">Stops the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask WriteClientProgressAsync(string principal, string clientId, ClientProgress progress, DateTimeOffset usedAt, CancellationToken cancellationToken);

    /// <summary>Reads a scope's revision counter: the revision of its latest change, 0 for a new scope.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The counter.</returns>
    ValueTask<long> ReadScopeRevisionAsync(string scope, CancellationToken cancellationToken);

    /// <summary>Writes a scope's revision counter.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="revision">The revision of its latest change.</param>
    /// <param name="cancellationToken">Stops the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask WriteScopeRevisionAsync(string scope, long revision, CancellationToken cancellationToken);

    /// <summary>Reads the documents that exist among the given keys.</summary>
    /// <param name="keys">The keys, without repeats.</param>
    /// <param name="found">Receives each document found.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>A task that completes when read.</returns>
    ValueTask ReadDocumentsAsync(IReadOnlyList<DocumentKey> keys, IDictionary<DocumentKey, DocumentState> found, CancellationToken cancellationToken);

    /// <summary>Inserts or replaces a document.</summary>
    /// <param name="key">The document's key.</param>
    /// <param name="state">Its state; <see cref="DocumentState.Revision"/> is its place in the scope's order.</param>
    /// <param name="deletedAt">When it was deleted, for a tombstone.</param>
    /// <param name="cancellationToken">Stops the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask WriteDocumentAsync(DocumentKey key, DocumentState state, DateTimeOffset? deletedAt, CancellationToken cancellationToken);

    /// <summary>Reads one conflict record.</summary>
    /// <param name="id">The conflict's id.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The record, or <see langword="null"/>.</returns>
    ValueTask<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken);

    /// <summary>Reads the open conflict record that one device of one principal has on a document.</summary>
    /// <param name="key">The document's key.</param>
    /// <param name="principal">The principal's stable key, as given to <see cref="WriteConflictAsync"/> as the record's owner.</param>
    /// <param name="clientId">The device's replica id (<see cref="ConflictRecord.ClientId"/>).</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The record, or <see langword="null"/> when the device has none open there.</returns>
    ValueTask<ConflictRecord?> ReadOpenConflictAsync(DocumentKey key, string principal, string clientId, CancellationToken cancellationToken);

    /// <summary>Counts the open conflict records of a document.</summary>
    /// <param name="key">The document's key.</param>
    /// <param name="cancellationToken">Stops the count.</param>
    /// <returns>The number of open records.</returns>
    ValueTask<int> CountOpenConflictsAsync(DocumentKey key, CancellationToken cancellationToken);

    /// <summary>Counts the open conflict records of a scope.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Stops the count.</param>
    /// <returns>The number of open records.</returns>
    ValueTask<int> CountOpenConflictsAsync(string scope, CancellationToken cancellationToken);

    /// <summary>Inserts or replaces a conflict record.</summary>
    /// <param name="record">The record; <see cref="ConflictRecord.Revision"/> is its place in the scope's order.</param>
    /// <param name="resolvedAt">When it was resolved, for a resolved record.</param>
    /// <param name="owner">The stable key of the principal whose device opened the record, kept with it and never sent; <see langword="null"/> keeps the owner a stored record has.</param>
    /// <param name="cancellationToken">Stops the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask WriteConflictAsync(ConflictRecord record, DateTimeOffset? resolvedAt, string? owner, CancellationToken cancellationToken);

    /// <summary>Writes the last timestamp of the server's hybrid clock.</summary>
    /// <param name="last">The timestamp.</param>
    /// <param name="cancellationToken">Stops the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask WriteClockAsync(HybridTimestamp last, CancellationToken cancellationToken);

    /// <summary>Commits every write of the transaction at once.</summary>
    /// <param name="cancellationToken">Stops the wait; a commit that started completes.</param>
    /// <returns>A task that completes when the writes are durable to the store's setting.</returns>
    ValueTask CommitAsync(CancellationToken cancellationToken);
}

/// <summary>The key of a document: scope, collection and id.</summary>
/// <param name="Scope">The scope.</param>
/// <param name="Collection">The collection.</param>
/// <param name="Id">The document's id.</param>
public readonly record struct DocumentKey(string Scope, string Collection, string Id);

/// <summary>How far a client got: the id of the last mutation applied for it, the timestamp that mutation carried, and the timestamps of the mutations its last push applied.</summary>
/// <param name="LastMutationId">The id; 0 when none was applied.</param>
/// <param name="LastHlc">The timestamp the client stamped that mutation with (before any re-stamp).</param>
/// <remarks>
/// A retried push carries each mutation with the id and timestamp it had. A mutation whose id was applied already but
/// whose timestamp differs from the one applied under that id (<see cref="Recent"/>), or, beyond that window, is newer
/// than <see cref="LastHlc"/>, is not a retry: the client reuses ids (its store was restored from a backup, or copied
/// to another device), and the server refuses it rather than drop it as a duplicate.
/// </remarks>
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
public readonly record struct AppliedMutation(long Id, HybridTimestamp Hlc);

/// <summary>A page of a scope's changes, read from one snapshot.</summary>
/// <param name="Documents">The changed documents, each with its whole state, in revision order.</param>
/// <param name="Conflicts">The created or resolved conflict records, in revision order.</param>
/// <param name="HasMore">Whether items with higher revisions follow the page.</param>
/// <param name="ScopeRevision">The scope's revision counter.</param>
/// <param name="MinValidCursor">The scope's min valid cursor: the highest revision compaction removed, 0 when none.</param>
public sealed record ChangePage(
    IReadOnlyList<DocumentChange> Documents,
    IReadOnlyList<ConflictRecord> Conflicts,
    bool HasMore,
    long ScopeRevision,
    long MinValidCursor);

/// <summary>A page of a scope's open conflict records.</summary>
/// <param name="Conflicts">The records, in revision order.</param>
/// <param name="HasMore">Whether open records with higher revisions follow the page.</param>
public sealed record ConflictPage(IReadOnlyList<ConflictRecord> Conflicts, bool HasMore);

/// <summary>What a compaction did.</summary>
/// <param name="TombstonesRemoved">The deleted documents removed.</param>
/// <param name="ConflictsRemoved">The resolved conflict records removed.</param>
/// <param name="ScopesAffected">The scopes whose min valid cursor was raised.</param>
/// <param name="ItemsMoved">The documents and conflict records that stayed and took a new revision, above the raised min valid cursor.</param>
/// <param name="ClientsRemoved">The client progress records removed, unused for longer than the client retention.</param>
public sealed record CompactionResult(int TombstonesRemoved, int ConflictsRemoved, int ScopesAffected, int ItemsMoved, int ClientsRemoved = 0);
