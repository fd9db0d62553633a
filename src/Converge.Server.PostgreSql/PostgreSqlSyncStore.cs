using System.Data;
using System.Security.Cryptography;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Converge.PostgreSql;
using Converge.Storage;
using Npgsql;

namespace Converge.Server.PostgreSql;

/// <summary>A sync store in PostgreSQL, which several server nodes can share.</summary>
/// <remarks>
/// <para>
/// The tables live in the <c>converge</c> schema of the database. <see cref="InitializeAsync"/> creates or migrates them
/// under an advisory lock, so nodes that start together migrate once; the applied versions are kept in
/// <c>converge.schema_version</c>.
/// </para>
/// <para>
/// Each <see cref="ISyncTransaction"/> is one READ COMMITTED transaction on its own connection. Reading a scope's revision
/// locks the scope's counter row until the transaction ends, so the pushes of one scope take their revisions and commit
/// one after the other: a transaction that takes revisions after another's can only read the counter once the other
/// has committed, and so becomes visible after it. A pull, which reads from one snapshot, therefore never sees a
/// revision while an earlier one of the same scope is still to commit, and its cursor never passes a change. Pushes to
/// different scopes do not wait for each other. Reading a client's progress locks the client's row, so one push sent
/// twice at once, to two nodes, is applied once.
/// </para>
/// <para>
/// Each document is one row holding its whole state as the protocol's JSON, keyed by (scope, collection, id) and unique
/// by (scope, rev), so a pull is an index seek on (scope, rev) whose cost follows the changes, not the store.
/// </para>
/// </remarks>
public sealed partial class PostgreSqlSyncStore : ISyncStore, IRawChangeReader, ICommitFeed, IAsyncDisposable, IDisposable
{
    private const int CompactionBatchSize = 1_000;

    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly ILogger _logger;
    private readonly string _database;
    private readonly SemaphoreSlim _initLock = new(1, 1);
    private volatile Task<string>? _epoch;
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="PostgreSqlSyncStore"/> class on a data source the caller owns and disposes.</summary>
    /// <param name="dataSource">The database's data source; its connection string's user needs to create a schema and tables in the database, the first time.</param>
    /// <param name="logger">Logs schema migrations; none when <see langword="null"/>.</param>
    public PostgreSqlSyncStore(NpgsqlDataSource dataSource, ILogger? logger = null)
        : this(dataSource, logger, ownsDataSource: false)
    {
    }

    private PostgreSqlSyncStore(NpgsqlDataSource dataSource, ILogger? logger, bool ownsDataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _logger = logger ?? NullLogger.Instance;
        _database = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Database ?? "";
    }

    /// <summary>Makes a store that owns a data source made from a connection string, with auto-prepared statements unless the connection string says otherwise.</summary>
    internal static PostgreSqlSyncStore Create(string connectionString, ILoggerFactory? loggerFactory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var builder = PostgresListener.Builder(connectionString, "Converge", maxAutoPrepare: 32);

        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return new PostgreSqlSyncStore(builder.Build(), loggerFactory?.CreateLogger("Converge.Server.PostgreSql"), ownsDataSource: true);
    }

    /// <inheritdoc/>
    public int ContractVersion => SyncStoreContract.Version;

    /// <inheritdoc/>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await _initLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_epoch is not null)
            {
                return;
            }

            _epoch = Task.FromResult(await MigrateAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"Cannot open the Converge store in PostgreSQL database '{_database}': {e.Message}", e);
        }
        finally
        {
            _initLock.Release();
        }
    }

    /// <summary>Creates or migrates the schema under the migration lock, and reads the epoch.</summary>
    private async Task<string> MigrateAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                // Released at commit or rollback: a node that starts while another migrates waits, then finds it done.
                await ExecuteAsync(connection, "SELECT pg_advisory_xact_lock($1)", PostgreSqlSchema.MigrationLockKey, cancellationToken).ConfigureAwait(false);
                using (var exists = new NpgsqlCommand("SELECT to_regclass('converge.schema_version') IS NOT NULL", connection))
                {
                    // Only a new database needs the right to create a schema: a user with rights on the tables alone can open
                    // a database that is current.
                    if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                    {
                        await ExecuteAsync(connection, PostgreSqlSchema.Prepare, cancellationToken).ConfigureAwait(false);
                    }
                }

                int found;
                using (var read = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM converge.schema_version", connection))
                {
                    found = (int)(await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                }

                if (found > PostgreSqlSchema.Version)
                {
                    throw new InvalidOperationException(
                        $"The Converge store in PostgreSQL database '{_database}' has schema version {found}; this server reads version {PostgreSqlSchema.Version}. Use a server of the version that made it.");
                }

                for (var version = found + 1; version <= PostgreSqlSchema.Version; version++)
                {
                    await ExecuteAsync(connection, PostgreSqlSchema.Migrations[version - 1], cancellationToken).ConfigureAwait(false);
                    await ExecuteAsync(connection, "INSERT INTO converge.schema_version (version) VALUES ($1)", version, cancellationToken).ConfigureAwait(false);
                }

                // The epoch is made with the schema, so every node of the database reads the same one.
                await ExecuteAsync(connection, Sql.EnsureEpoch, NewEpoch(), cancellationToken).ConfigureAwait(false);
                string epoch;
                using (var read = new NpgsqlCommand(Sql.ReadEpoch, connection))
                {
                    epoch = (string)(await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                if (found < PostgreSqlSchema.Version)
                {
                    Log.SchemaMigrated(_logger, _database, found, PostgreSqlSchema.Version);
                }
                else
                {
                    Log.SchemaCurrent(_logger, _database, found);
                }

                return epoch;
            }
        }
    }

    /// <inheritdoc/>
    public Task<string> ReadEpochAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _epoch ?? throw NotInitialized();
    }

    /// <inheritdoc/>
    public async Task<string> RotateEpochAsync(CancellationToken cancellationToken)
    {
        ThrowIfNotInitialized();
        var epoch = NewEpoch();
        using (var command = _dataSource.CreateCommand(Sql.WriteEpoch).Bind(epoch))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        _epoch = Task.FromResult(epoch);
        Log.EpochRotated(_logger, _database);
        return epoch;
    }

    /// <summary>A new epoch: 128 random bits as 32 hex digits.</summary>
    private static string NewEpoch() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <inheritdoc/>
    public async Task<HybridTimestamp?> ReadClockAsync(CancellationToken cancellationToken)
    {
        ThrowIfNotInitialized();
        using var command = _dataSource.CreateCommand(Sql.ReadClock);
        var text = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        return HybridTimestamp.TryParse(text, out var last)
            ? last
            : throw new InvalidOperationException($"The Converge store in PostgreSQL database '{_database}' holds an unreadable clock '{text}'.");
    }

    /// <inheritdoc/>
    public async Task<ISyncTransaction> BeginAsync(CancellationToken cancellationToken)
    {
        ThrowIfNotInitialized();
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return new PostgreSqlSyncTransaction(connection);
    }

    /// <inheritdoc/>
    public async Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        var page = await ReadRawChangesAsync(scope, after, limit, maxBytes, cancellationToken).ConfigureAwait(false);
        var documents = new List<DocumentChange>(page.Documents.Count);
        foreach (var document in page.Documents)
        {
            documents.Add(new DocumentChange { Collection = document.Collection, DocumentId = document.Id, State = Deserialize(document.State.Span, ProtocolJson.DocumentState) });
        }

        var conflicts = new List<ConflictRecord>(page.Conflicts.Count);
        foreach (var conflict in page.Conflicts)
        {
            conflicts.Add(Deserialize(conflict.Record.Span, ProtocolJson.ConflictRecord));
        }

        return new ChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = page.HasMore,
            ScopeRevision = page.ScopeRevision,
            MinValidCursor = page.MinValidCursor,
        };
    }

    /// <summary>Reads a page of a scope's changes with each document's state as the JSON it is stored as, so a pull sends it without building it.</summary>
    ValueTask<RawChangePage> IRawChangeReader.ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        new(ReadRawChangesAsync(scope, after, limit, maxBytes, cancellationToken));

    private async Task<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ThrowIfNotInitialized();
        var documents = new List<RawDocument>();
        var conflicts = new List<RawConflict>();
        long scopeRevision = 0, minValidCursor = 0;
        long documentsRead = 0, conflictsRead = 0;
        using (var command = _dataSource.CreateCommand(Sql.ReadChanges).Bind(scope).Bind(after).Bind(limit + 1L).Bind((long)maxBytes))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    switch (reader.GetInt32(0))
                    {
                        case 0:
                            scopeRevision = reader.GetInt64(1);
                            minValidCursor = reader.GetInt64(2);
                            break;
                        case 1:
                            documents.Add(new RawDocument
                            {
                                Revision = reader.GetInt64(1),
                                Collection = reader.GetString(3),
                                Id = reader.GetString(4),
                                State = reader.GetFieldValue<byte[]>(5),
                            });
                            documentsRead = reader.GetInt64(2);
                            break;
                        default:
                            conflicts.Add(new RawConflict { Revision = reader.GetInt64(1), Record = reader.GetFieldValue<byte[]>(5) });
                            conflictsRead = reader.GetInt64(2);
                            break;
                    }
                }
            }
        }

        // The parts of a UNION ALL come back in no promised order. Each holds up to limit + 1 items: the page keeps the
        // lowest revisions of both, and whatever is left over says that more follow.
        documents.Sort((a, b) => a.Revision.CompareTo(b.Revision));
        conflicts.Sort((a, b) => a.Revision.CompareTo(b.Revision));
        // Either part may also have been cut short by bytes, which the rows it read but did not send say.
        int d = 0, c = 0;
        long bytes = 0;
        while ((d < documents.Count || c < conflicts.Count) && d + c < limit)
        {
            var isDocument = d < documents.Count && (c == conflicts.Count || documents[d].Revision < conflicts[c].Revision);
            var length = isDocument ? documents[d].State.Length : conflicts[c].Record.Length;
            if (d + c > 0 && bytes + length > maxBytes)
            {
                break;
            }

            bytes += length;
            _ = isDocument ? d++ : c++;
        }

        var hasMore = d < documents.Count || c < conflicts.Count || documentsRead > documents.Count || conflictsRead > conflicts.Count;
        documents.RemoveRange(d, documents.Count - d);
        conflicts.RemoveRange(c, conflicts.Count - c);
        return new RawChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = hasMore,
            ScopeRevision = scopeRevision,
            MinValidCursor = minValidCursor,
        };
    }

    /// <inheritdoc/>
    public async Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ThrowIfNotInitialized();
        var records = new List<ConflictRecord>();
        long read = 0;
        using var command = _dataSource.CreateCommand(Sql.ReadOpenConflicts).Bind(scope).Bind(after).Bind(limit + 1L).Bind((long)maxBytes);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (records.Count < limit && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                records.Add(Deserialize(reader.GetFieldValue<byte[]>(0), ProtocolJson.ConflictRecord));
                read = reader.GetInt64(1);
            }
        }

        return new ConflictPage { Conflicts = records, HasMore = read > records.Count };
    }

    /// <inheritdoc/>
    public async Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ThrowIfNotInitialized();
        using var command = _dataSource.CreateCommand(Sql.ReadConflict).Bind(id);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is byte[] record
            ? Deserialize(record, ProtocolJson.ConflictRecord)
            : null;
    }

    /// <inheritdoc/>
    public async Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken)
    {
        ThrowIfNotInitialized();
        var cutoff = removeBefore.UtcDateTime;
        var targets = new List<(string Scope, long Highest)>();
        using (var command = _dataSource.CreateCommand(Sql.CompactionTargets).Bind(cutoff))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    targets.Add((reader.GetString(0), reader.GetInt64(1)));
                }
            }
        }

        // Batches keep each transaction, and so each hold on the scope's counter, short.
        return await CompactionLoop.RunAsync(
            targets,
            (scope, from, highest) => CompactBatchAsync(scope, from, highest, cutoff, cancellationToken),
            async () =>
            {
                // A record a push holds locked is in use: SKIP LOCKED leaves it, and the push marks it used anyway.
                using var command = _dataSource.CreateCommand(Sql.CompactClients).Bind(clientsUnusedBefore.UtcDateTime).Bind((long)CompactionLoop.ClientBatchSize);
                return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }


    private readonly record struct CompactionItem(long Revision, bool IsDocument, string Collection, string Id, bool Removable, byte[] Json);

    /// <summary>
    /// Walks the next items of a scope up to <paramref name="highest"/>, in revision order, holding the scope's counter as a
    /// push does: removes the old tombstones and resolved conflicts, moves every other item to a new revision, and raises
    /// the min valid cursor to the highest revision removed.
    /// </summary>
    /// <remarks>
    /// Moving the items that stay keeps every item of a scope above its min valid cursor, so a download from the start of
    /// the scope (a new client, or a reset) never holds a cursor below it and never gets reset again half-way.
    /// </remarks>
    private async Task<CompactionBatch> CompactBatchAsync(string scope, long from, long highest, DateTime cutoff, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                long revision = 0, minValid = 0;
                var items = new List<CompactionItem>();
                using (var read = new NpgsqlBatch(connection, transaction))
                {
                    // The reads after the lock see every commit of the scope before it (READ COMMITTED: a snapshot per statement).
                    read.BatchCommands.Add(Sql.Command(Sql.EnsureScope).Bind(scope));
                    read.BatchCommands.Add(Sql.Command(Sql.LockScope).Bind(scope));
                    read.BatchCommands.Add(Sql.Command(Sql.CompactionDocuments).Bind(scope).Bind(from).Bind(highest).Bind(cutoff).Bind(CompactionBatchSize + 1L));
                    read.BatchCommands.Add(Sql.Command(Sql.CompactionConflicts).Bind(scope).Bind(from).Bind(highest).Bind(cutoff).Bind(CompactionBatchSize + 1L));
                    var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    await using (reader.ConfigureAwait(false))
                    {
                        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            revision = reader.GetInt64(0);
                            minValid = reader.GetInt64(1);
                        }

                        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            items.Add(new(reader.GetInt64(0), true, reader.GetString(1), reader.GetString(2), reader.GetBoolean(3), reader.GetFieldValue<byte[]>(4)));
                        }

                        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            items.Add(new(reader.GetInt64(0), false, "", reader.GetString(1), reader.GetBoolean(2), reader.GetFieldValue<byte[]>(3)));
                        }
                    }
                }

                items.Sort((a, b) => a.Revision.CompareTo(b.Revision));
                var done = items.Count <= CompactionBatchSize;
                if (!done)
                {
                    items.RemoveRange(CompactionBatchSize, items.Count - CompactionBatchSize);
                }

                List<string> removedCollections = [], removedIds = [], removedConflicts = [];
                List<string> movedCollections = [], movedIds = [], movedConflictIds = [];
                List<long> movedRevisions = [], movedConflictRevisions = [];
                List<byte[]> movedStates = [], movedRecords = [];
                foreach (var item in items)
                {
                    if (item.Removable)
                    {
                        minValid = Math.Max(minValid, item.Revision);
                        if (item.IsDocument)
                        {
                            removedCollections.Add(item.Collection);
                            removedIds.Add(item.Id);
                        }
                        else
                        {
                            removedConflicts.Add(item.Id);
                        }

                        continue;
                    }

                    var next = ++revision;
                    if (item.IsDocument)
                    {
                        movedCollections.Add(item.Collection);
                        movedIds.Add(item.Id);
                        movedRevisions.Add(next);
                        movedStates.Add(JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.DocumentState) with { Revision = next }, ProtocolJson.DocumentState));
                    }
                    else
                    {
                        movedConflictIds.Add(item.Id);
                        movedConflictRevisions.Add(next);
                        movedRecords.Add(JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.ConflictRecord) with { Revision = next }, ProtocolJson.ConflictRecord));
                    }
                }

                using (var write = new NpgsqlBatch(connection, transaction))
                {
                    if (removedIds.Count > 0)
                    {
                        write.BatchCommands.Add(Sql.Command(Sql.DeleteDocuments).Bind(scope).Bind(removedCollections.ToArray()).Bind(removedIds.ToArray()));
                    }

                    if (removedConflicts.Count > 0)
                    {
                        write.BatchCommands.Add(Sql.Command(Sql.DeleteConflicts).Bind(removedConflicts.ToArray()));
                    }

                    if (movedIds.Count > 0)
                    {
                        write.BatchCommands.Add(Sql.Command(Sql.MoveDocuments).Bind(scope).Bind(movedCollections.ToArray()).Bind(movedIds.ToArray()).Bind(movedRevisions.ToArray()).Bind(movedStates.ToArray()));
                    }

                    if (movedConflictIds.Count > 0)
                    {
                        write.BatchCommands.Add(Sql.Command(Sql.MoveConflicts).Bind(movedConflictIds.ToArray()).Bind(movedConflictRevisions.ToArray()).Bind(movedRecords.ToArray()));
                    }

                    write.BatchCommands.Add(Sql.Command(Sql.WriteCompactedScope).Bind(scope).Bind(revision).Bind(minValid));
                    await write.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return new CompactionBatch(
                    removedIds.Count,
                    removedConflicts.Count,
                    movedIds.Count + movedConflictIds.Count,
                    items.Count > 0 ? items[^1].Revision : highest,
                    done);
            }
        }
    }

    /// <inheritdoc/>
    public async Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        ThrowIfNotInitialized();
        using var command = _dataSource.CreateCommand(Sql.CheckHealth);
        _ = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as int?
            ?? throw new InvalidOperationException($"The Converge store in PostgreSQL database '{_database}' has no schema version.");
    }

    /// <summary>Closes the store's connections when it made its data source; a data source passed in stays open.</summary>
    /// <returns>A task that completes when closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes the store's connections when it made its data source; a data source passed in stays open.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _ownsDataSource)
        {
            _dataSource.Dispose();
        }
    }

    internal static T Deserialize<T>(ReadOnlySpan<byte> json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.Deserialize(json, typeInfo) ?? throw new InvalidOperationException($"A stored {typeof(T).Name} is null.");

    private void ThrowIfNotInitialized()
    {
        if (_epoch is null)
        {
            throw NotInitialized();
        }
    }

    private static InvalidOperationException NotInitialized() => new("The Converge store is not initialized; call InitializeAsync first.");

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecuteAsync<T>(NpgsqlConnection connection, string sql, T parameter, CancellationToken cancellationToken)
    {
        using var command = new NpgsqlCommand(sql, connection).Bind(parameter);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
