using System.Buffers;
using System.Buffers.Binary;
using System.Data;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Converge.Server.PostgreSql;

/// <summary>One READ COMMITTED transaction on a connection of its own.</summary>
/// <remarks>
/// Writes wait in memory and go to the server with the next read or with the commit, in one batch with it, so a push
/// makes a handful of round trips however many documents it writes: reading the client's progress (with <c>BEGIN</c>),
/// each scope's counter, the documents, then every write and <c>COMMIT</c> together.
/// </remarks>
internal sealed class PostgreSqlSyncTransaction(NpgsqlConnection connection) : ISyncTransaction
{
    private const int RecentEntrySize = sizeof(long) + HybridTimestamp.BinarySize;

    private readonly Dictionary<DocumentKey, PendingDocument> _documents = [];
    private readonly HashSet<DocumentKey> _missing = [];
    private readonly Dictionary<string, (ConflictRecord Record, DateTimeOffset? ResolvedAt, string? Owner)> _conflicts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _scopes = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Principal, string Client), (ClientProgress Progress, DateTimeOffset UsedAt)> _clients = [];
    private HybridTimestamp? _clock;
    private List<string>? _notices;
    private HashSet<string>? _lockedScopes;
    private ArrayBufferWriter<byte>? _stateBuffer;
    private Utf8JsonWriter? _stateWriter;
    private bool _begun;
    private bool _failed;
    private bool _committed;
    private bool _disposed;

    private readonly record struct PendingDocument(DocumentKey Key, long Revision, bool Deleted, DateTime? DeletedAt, byte[] State);

    public ValueTask<ClientProgress> ReadClientProgressAsync(string principal, string clientId, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var batch = NewBatch();

        // The row lock lasts until the transaction ends: the same push sent to two nodes at once is applied by the first,
        // and the second reads the progress it committed.
        batch.BatchCommands.Add(Sql.Command(Sql.EnsureClient).Bind(principal).Bind(clientId));
        batch.BatchCommands.Add(Sql.Command(Sql.LockClient).Bind(principal).Bind(clientId));
        return QueryAsync(batch, ReadProgressAsync, cancellationToken);
    }

    public ValueTask<ClientProgress> ReadFormerClientProgressAsync(IReadOnlyList<string> formerPrincipals, string clientId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(formerPrincipals);
        ThrowIfDone(cancellationToken);
        if (formerPrincipals.Count == 0)
        {
            return ValueTask.FromResult(ClientProgress.None);
        }

        var batch = NewBatch();
        batch.BatchCommands.Add(Sql.Command(Sql.ReadFormerClient).Bind(formerPrincipals.ToArray()).Bind(clientId));
        return QueryAsync(batch, ReadProgressAsync, cancellationToken);
    }

    private static async ValueTask<ClientProgress> ReadProgressAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false) || reader.IsDBNull(1))
        {
            return ClientProgress.None;
        }

        var last = reader.GetInt64(0);
        var hlc = HybridTimestamp.ReadFrom(reader.GetFieldValue<byte[]>(1));
        var recent = reader.IsDBNull(2) ? [] : ReadRecent(reader.GetFieldValue<byte[]>(2));
        return new ClientProgress(last, hlc) { Recent = recent };
    }

    public ValueTask WriteClientProgressAsync(string principal, string clientId, ClientProgress progress, DateTimeOffset usedAt, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        _clients[(principal, clientId)] = (progress, usedAt);
        return ValueTask.CompletedTask;
    }

    public async ValueTask<long> ReadScopeRevisionAsync(string scope, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var batch = NewBatch();

        // The counter row stays locked until the transaction ends, so the scope's next writer reads the counter only
        // after this transaction's revisions are committed and visible.
        batch.BatchCommands.Add(Sql.Command(Sql.EnsureScope).Bind(scope));
        batch.BatchCommands.Add(Sql.Command(Sql.LockScope).Bind(scope));
        var revision = await QueryAsync(batch, static async (reader, cancellationToken) =>
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? reader.GetInt64(0) : 0L, cancellationToken).ConfigureAwait(false);
        (_lockedScopes ??= new(StringComparer.Ordinal)).Add(scope);
        return revision;
    }

    public ValueTask WriteScopeRevisionAsync(string scope, long revision, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        _scopes[scope] = revision;
        return ValueTask.CompletedTask;
    }

    public async ValueTask ReadDocumentsAsync(IReadOnlyList<DocumentKey> keys, IDictionary<DocumentKey, DocumentState> found, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(found);
        ThrowIfDone(cancellationToken);
        if (keys.Count == 0)
        {
            return;
        }

        var scopes = new string[keys.Count];
        var collections = new string[keys.Count];
        var ids = new string[keys.Count];
        for (var i = 0; i < keys.Count; i++)
        {
            (scopes[i], collections[i], ids[i]) = keys[i];
        }

        // One statement for every key: a push reads all its documents in one round trip.
        var batch = NewBatch();
        batch.BatchCommands.Add(Sql.Command(Sql.ReadDocuments).Bind(scopes).Bind(collections).Bind(ids));
        var read = new HashSet<DocumentKey>();
        await QueryAsync(batch, async (reader, cancellationToken) =>
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var key = new DocumentKey(reader.GetString(0), reader.GetString(1), reader.GetString(2));
                found[key] = PostgreSqlSyncStore.Deserialize(reader.GetFieldValue<byte[]>(3), ProtocolJson.DocumentState);
                read.Add(key);
            }

            return true;
        }, cancellationToken).ConfigureAwait(false);

        // A key missing from a scope whose counter this transaction holds stays missing until it commits: every writer of
        // the scope takes the counter first. Such a document is inserted, which costs less than an upsert.
        if (_lockedScopes is { } locked)
        {
            foreach (var key in keys)
            {
                if (!read.Contains(key) && locked.Contains(key.Scope))
                {
                    _missing.Add(key);
                }
            }
        }
    }

    public ValueTask WriteDocumentAsync(DocumentKey key, DocumentState state, DateTimeOffset? deletedAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        ThrowIfDone(cancellationToken);
        var at = state.Deleted && deletedAt is { } when ? when.UtcDateTime : (DateTime?)null;
        var buffer = _stateBuffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = _stateWriter ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        DocumentStateJson.Write(writer, state);
        writer.Flush();
        _documents[key] = new PendingDocument(key, state.Revision, state.Deleted, at, buffer.WrittenSpan.ToArray());
        return ValueTask.CompletedTask;
    }

    public async ValueTask<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var batch = NewBatch();
        var lockScope = _lockedScopes is null;
        if (lockScope)
        {
            // A resolution reads the record before it takes the scope's counter; taking it first means the record read
            // next is not one a push of the scope is about to change. A transaction that holds counters already (a push)
            // reads as it is: a record of one of its scopes cannot change under it, and the engine refuses any other.
            batch.BatchCommands.Add(Sql.Command(Sql.LockConflictScope).Bind(id));
        }

        batch.BatchCommands.Add(Sql.Command(Sql.ReadConflict).Bind(id));
        var (locked, record) = await QueryAsync(batch, async (reader, cancellationToken) =>
        {
            string? locked = null;
            if (lockScope)
            {
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    locked = reader.GetString(0);
                }

                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }

            var record = await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                ? PostgreSqlSyncStore.Deserialize(reader.GetFieldValue<byte[]>(0), ProtocolJson.ConflictRecord)
                : null;
            return (locked, record);
        }, cancellationToken).ConfigureAwait(false);
        if (locked is not null)
        {
            (_lockedScopes ??= new(StringComparer.Ordinal)).Add(locked);
        }

        return record;
    }

    public async ValueTask<ConflictRecord?> ReadOpenConflictAsync(DocumentKey key, string principal, string clientId, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);

        // Writes of this transaction wait for the commit: they count as written.
        foreach (var (pending, _, owner) in _conflicts.Values)
        {
            if (pending.Scope == key.Scope && pending.Collection == key.Collection && pending.DocumentId == key.Id && pending.ClientId == clientId && owner == principal)
            {
                return pending.Status == ConflictStatus.Open ? pending : null;
            }
        }

        var batch = NewBatch();
        batch.BatchCommands.Add(Sql.Command(Sql.ReadOwnOpenConflicts).Bind(key.Scope).Bind(key.Collection).Bind(key.Id).Bind(principal).Bind(clientId));
        var record = await QueryAsync(batch, async (reader, cancellationToken) =>
        {
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                ? PostgreSqlSyncStore.Deserialize(reader.GetFieldValue<byte[]>(0), ProtocolJson.ConflictRecord)
                : null;
        }, cancellationToken).ConfigureAwait(false);
        return record is not null && _conflicts.TryGetValue(record.Id, out var written) && written.Record.Status != ConflictStatus.Open ? null : record;
    }

    public async ValueTask<int> CountOpenConflictsAsync(DocumentKey key, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var batch = NewBatch();
        batch.BatchCommands.Add(Sql.Command(Sql.CountDocumentConflicts).Bind(key.Scope).Bind(key.Collection).Bind(key.Id));
        return await QueryAsync(batch, static async (reader, cancellationToken) =>
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? (int)reader.GetInt64(0) : 0, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<int> CountOpenConflictsAsync(string scope, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var batch = NewBatch();
        batch.BatchCommands.Add(Sql.Command(Sql.CountOpenConflicts).Bind(scope));
        return await QueryAsync(batch, static async (reader, cancellationToken) =>
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? (int)reader.GetInt64(0) : 0, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask WriteConflictAsync(ConflictRecord record, DateTimeOffset? resolvedAt, string? owner, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ThrowIfDone(cancellationToken);
        _conflicts[record.Id] = (record, resolvedAt, owner ?? (_conflicts.TryGetValue(record.Id, out var earlier) ? earlier.Owner : null));
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteClockAsync(HybridTimestamp last, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        _clock = last;
        return ValueTask.CompletedTask;
    }

    public async ValueTask CommitAsync(CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        if (_failed)
        {
            // PostgreSQL would answer COMMIT with a rollback, not with an error.
            throw new InvalidOperationException("A statement of the transaction failed, so it cannot commit.");
        }

        if (_begun || HasWrites)
        {
            using var batch = NewBatch();
            batch.BatchCommands.Add(Sql.Command("COMMIT"));
            try
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                _failed = true;
                throw;
            }
        }

        _committed = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stateWriter?.Dispose();
        try
        {
            if (_begun && !_committed && connection.State == ConnectionState.Open)
            {
                using var rollback = new NpgsqlCommand("ROLLBACK", connection);
                await rollback.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (NpgsqlException)
        {
            // The connection broke: it is not pooled again, and the server rolls back when the session ends.
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private bool HasWrites => _documents.Count > 0 || _conflicts.Count > 0 || _scopes.Count > 0 || _clients.Count > 0 || _clock is not null || _notices is not null;

    /// <summary>Adds a notification to the transaction: PostgreSQL delivers it to every listener when the transaction commits, in commit order, and drops it on a rollback.</summary>
    public void Notify(string payload) => (_notices ??= []).Add(payload);

    /// <summary>A batch that begins the transaction if this is its first, and carries the writes made since the last one ahead of what the caller adds.</summary>
    private NpgsqlBatch NewBatch()
    {
        var batch = new NpgsqlBatch(connection);
        if (!_begun)
        {
            batch.BatchCommands.Add(Sql.Command("BEGIN ISOLATION LEVEL READ COMMITTED"));
            _begun = true;
        }

        if (_documents.Count > 0)
        {
            var inserts = 0;
            foreach (var key in _documents.Keys)
            {
                inserts += _missing.Contains(key) ? 1 : 0;
            }

            // At most two statements for every document of the push, however many: new ones, and the others.
            AddDocuments(batch, Sql.InsertDocuments, inserts, isNew: true);
            AddDocuments(batch, Sql.WriteDocuments, _documents.Count - inserts, isNew: false);
            foreach (var key in _documents.Keys)
            {
                _missing.Remove(key);
            }

            _documents.Clear();
        }

        foreach (var (record, resolvedAt, owner) in _conflicts.Values)
        {
            var resolved = record.Status == ConflictStatus.Resolved;
            batch.BatchCommands.Add(Sql.Command(Sql.WriteConflict)
                .Bind(record.Id)
                .Bind(record.Scope)
                .Bind(record.Collection)
                .Bind(record.DocumentId)
                .Bind(record.Revision)
                .Bind((short)(resolved ? 1 : 0))
                .Bind(JsonSerializer.SerializeToUtf8Bytes(record, ProtocolJson.ConflictRecord))
                .Bind(record.CreatedAt.UtcDateTime)
                .Bind(resolved && resolvedAt is { } at ? at.UtcDateTime : (DateTime?)null, NpgsqlDbType.TimestampTz)
                .Bind(owner, NpgsqlDbType.Text)
                .Bind(record.ClientId));
        }

        _conflicts.Clear();
        foreach (var (scope, revision) in _scopes)
        {
            batch.BatchCommands.Add(Sql.Command(Sql.WriteScope).Bind(scope).Bind(revision));
        }

        _scopes.Clear();
        foreach (var ((principal, client), (progress, usedAt)) in _clients)
        {
            var hlc = new byte[HybridTimestamp.BinarySize];
            progress.LastHlc.WriteTo(hlc);
            batch.BatchCommands.Add(Sql.Command(Sql.WriteClient).Bind(principal).Bind(client).Bind(progress.LastMutationId).Bind(hlc).Bind(WriteRecent(progress.Recent)).Bind(usedAt.UtcDateTime));
        }

        _clients.Clear();
        if (_clock is { } clock)
        {
            batch.BatchCommands.Add(Sql.Command(Sql.WriteClock).Bind(clock.ToString()));
            _clock = null;
        }

        foreach (var payload in _notices ?? [])
        {
            batch.BatchCommands.Add(Sql.Command(Sql.Notify).Bind(PostgreSqlSyncStore.CommitChannel).Bind(payload));
        }

        _notices = null;

        return batch;
    }

    /// <summary>Adds one statement that writes the pending documents that are new, or those that are not, one array per column.</summary>
    private void AddDocuments(NpgsqlBatch batch, string sql, int count, bool isNew)
    {
        if (count == 0)
        {
            return;
        }

        var scopes = new string[count];
        var collections = new string[count];
        var ids = new string[count];
        var revisions = new long[count];
        var deleted = new bool[count];
        var deletedAt = new DateTime?[count];
        var states = new byte[count][];
        var i = 0;
        foreach (var document in _documents.Values)
        {
            if (_missing.Contains(document.Key) != isNew)
            {
                continue;
            }

            (scopes[i], collections[i], ids[i]) = document.Key;
            revisions[i] = document.Revision;
            deleted[i] = document.Deleted;
            deletedAt[i] = document.DeletedAt;
            states[i] = document.State;
            i++;
        }

        batch.BatchCommands.Add(Sql.Command(sql)
            .Bind(scopes)
            .Bind(collections)
            .Bind(ids)
            .Bind(revisions)
            .Bind(deleted)
            .Bind(deletedAt, NpgsqlDbType.Array | NpgsqlDbType.TimestampTz)
            .Bind(states));
    }

    /// <summary>Runs a batch and reads its results; a failure marks the transaction as failed, so it cannot commit.</summary>
    private async ValueTask<T> QueryAsync<T>(NpgsqlBatch batch, Func<NpgsqlDataReader, CancellationToken, ValueTask<T>> read, CancellationToken cancellationToken)
    {
        try
        {
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                return await read(reader, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            _failed = true;
            throw;
        }
        finally
        {
            batch.Dispose();
        }
    }

    /// <summary>Reads the recent mutations: per entry the id (8 bytes, big-endian) and the timestamp's binary form, as the SQLite store keeps them.</summary>
    private static AppliedMutation[] ReadRecent(byte[] bytes)
    {
        var entries = new AppliedMutation[bytes.Length / RecentEntrySize];
        for (var i = 0; i < entries.Length; i++)
        {
            var entry = bytes.AsSpan(i * RecentEntrySize, RecentEntrySize);
            entries[i] = new AppliedMutation(BinaryPrimitives.ReadInt64BigEndian(entry), HybridTimestamp.ReadFrom(entry[sizeof(long)..]));
        }

        return entries;
    }

    private static byte[] WriteRecent(IReadOnlyList<AppliedMutation> recent)
    {
        var bytes = new byte[recent.Count * RecentEntrySize];
        for (var i = 0; i < recent.Count; i++)
        {
            var entry = bytes.AsSpan(i * RecentEntrySize, RecentEntrySize);
            BinaryPrimitives.WriteInt64BigEndian(entry, recent[i].Id);
            recent[i].Hlc.WriteTo(entry[sizeof(long)..]);
        }

        return bytes;
    }

    private void ThrowIfDone(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed)
        {
            throw new InvalidOperationException("The transaction is committed.");
        }

        cancellationToken.ThrowIfCancellationRequested();
    }
}
