using System.Diagnostics.CodeAnalysis;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server.Storage;

/// <summary>One write transaction of an <see cref="ISyncStore"/>.</summary>
/// <remarks>Not thread-safe: one caller uses it at a time. Disposing without committing rolls everything back.</remarks>
[Experimental(SyncStoreContract.DiagnosticId)]
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
