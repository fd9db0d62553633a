using Converge.Sqlite;
using Converge.Storage;
using System.Globalization;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Authentication;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The embedded SQLite store: WAL, one serialized writer connection, reads on pooled connections.</summary>
/// <remarks>
/// Each document is one row holding its whole <see cref="DocumentState"/> as JSON, keyed by (scope, collection, id) and
/// unique by (scope, rev), so a pull is an index seek on (scope, rev) whose cost follows the changes, not the store.
/// The writer's statements are prepared once for the life of the store.
/// </remarks>
internal sealed partial class SqliteSyncStore : ISyncStore, IRawChangeReader, IDisposable
{
    /// <summary>The schema this code reads and writes.</summary>
    /// <remarks>2: client progress records have a last-used time and keys in namespaces (<c>apikey:</c>, <c>jwt:</c>, <c>auth:</c>).</remarks>
    public const int SchemaVersion = 2;

    private const int CompactionBatchSize = 1_000;

    private readonly string _path;
    private readonly SynchronousMode _synchronous;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _initLock = new(1, 1);
    private string _connectionString = "";
    private SqliteConnection? _writer;
    private FileStream? _lockFile;
    private WriterCommands? _commands;
    private WalCheckpointer? _checkpointer;
    private volatile bool _ready;
    private volatile Task<string>? _epoch;
    private bool _disposed;

    public SqliteSyncStore(string path, SynchronousMode synchronous)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _path = Path.GetFullPath(path);
        _synchronous = synchronous;
    }

    /// <summary>Gets the full path of the database file.</summary>
    public string DatabasePath => _path;

    public int ContractVersion => SyncStoreContract.Version;

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await _initLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_ready)
            {
                return;
            }

            Open();
            _ready = true;
        }
        finally
        {
            _initLock.Release();
        }
    }

    private void Open()
    {
        var directory = Path.GetDirectoryName(_path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        try
        {
            // FileShare.None takes an exclusive advisory lock that the OS releases if the process dies: two servers on one
            // file would share a clock node id and break the order of timestamps.
            _lockFile = new FileStream(_path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The Converge store '{_path}' is in use by another server process (its lock file '{_path}.lock' is held).", e);
        }

        try
        {
            _connectionString = new SqliteConnectionStringBuilder
            {
                DataSource = _path,
                Pooling = true,
                DefaultTimeout = 30,
            }.ToString();
            _writer = new SqliteConnection(_connectionString);
            _writer.Open();
            var mode = Scalar(_writer, "PRAGMA journal_mode=WAL;") as string;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"The Converge store '{_path}' cannot use write-ahead logging (journal mode is '{mode}').");
            }

            Execute(_writer, _synchronous == SynchronousMode.Full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
            Execute(_writer, "PRAGMA busy_timeout=30000;");
            Execute(_writer, "PRAGMA temp_store=MEMORY;");
            Execute(_writer, WalCheckpointer.TurnWriterPragmas);
            EnsureSchema(_writer);
            _commands = new WriterCommands(_writer);
            _checkpointer = new WalCheckpointer(_connectionString, _writeLock);
        }
        catch (SqliteException e)
        {
            CloseConnections();
            throw new InvalidOperationException($"Cannot open the Converge store '{_path}': {e.Message}", e);
        }
        catch
        {
            CloseConnections();
            throw;
        }
    }

    private void EnsureSchema(SqliteConnection connection)
    {
        Execute(connection, "BEGIN IMMEDIATE;");
        try
        {
            Execute(connection, "CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;");
            var version = Scalar(connection, "SELECT value FROM meta WHERE key = 'schema_version';") as string;
            if (version is null)
            {
                Execute(connection, """
                    CREATE TABLE scopes (
                        scope TEXT NOT NULL PRIMARY KEY,
                        revision INTEGER NOT NULL,
                        min_valid INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    CREATE TABLE documents (
                        scope TEXT NOT NULL,
                        collection TEXT NOT NULL,
                        id TEXT NOT NULL,
                        rev INTEGER NOT NULL,
                        deleted INTEGER NOT NULL,
                        deleted_at INTEGER,
                        state BLOB NOT NULL,
                        PRIMARY KEY (scope, collection, id)
                    );
                    CREATE UNIQUE INDEX documents_scope_rev ON documents (scope, rev);
                    CREATE INDEX documents_tombstones ON documents (deleted_at) WHERE deleted = 1;
                    CREATE TABLE conflicts (
                        id TEXT NOT NULL PRIMARY KEY,
                        scope TEXT NOT NULL,
                        collection TEXT NOT NULL,
                        doc TEXT NOT NULL,
                        rev INTEGER NOT NULL,
                        status INTEGER NOT NULL,
                        record BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        resolved_at INTEGER,
                        owner TEXT,
                        client TEXT
                    );
                    CREATE INDEX conflicts_scope_rev ON conflicts (scope, rev);
                    CREATE INDEX conflicts_resolved ON conflicts (resolved_at) WHERE status = 1;
                    CREATE TABLE clients (
                        principal TEXT NOT NULL,
                        client TEXT NOT NULL,
                        last_mutation INTEGER NOT NULL,
                        last_hlc BLOB NOT NULL,
                        recent BLOB,
                        last_used INTEGER NOT NULL,
                        PRIMARY KEY (principal, client)
                    ) WITHOUT ROWID;
                    CREATE INDEX clients_last_used ON clients (last_used);
                    """);
                Execute(connection, $"INSERT INTO meta (key, value) VALUES ('schema_version', '{SchemaVersion}');");
            }
            else if (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var found) || found < 1 || found > SchemaVersion)
            {
                throw new InvalidOperationException(
                    $"The Converge store '{_path}' has schema version {version}; this server reads version {SchemaVersion}. Use a server of the version that made it.");
            }
            else
            {
                // The window of recent mutation timestamps came after the first stores; such a store gets the column now.
                if (Scalar(connection, "SELECT count(*) FROM pragma_table_info('clients') WHERE name = 'recent';") is 0L)
                {
                    Execute(connection, "ALTER TABLE clients ADD COLUMN recent BLOB;");
                }

                if (found < 2)
                {
                    MigrateClientKeys(connection);
                }
            }

            // Open conflicts are looked up per document (one open record per device, a cap per document and per scope);
            // a store made before that gets the index now.
            // A store made before that gets the index now, and the column that says whose device opened a record.
            if (Scalar(connection, "SELECT count(*) FROM pragma_table_info('conflicts') WHERE name = 'owner';") is 0L)
            {
                Execute(connection, "ALTER TABLE conflicts ADD COLUMN owner TEXT;");
                Execute(connection, "ALTER TABLE conflicts ADD COLUMN client TEXT;");
            }

            Execute(connection, "CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts (scope, collection, doc) WHERE status = 0;");

            // The epoch is made with the schema; a store made before epochs existed gets its first one now.
            if (Scalar(connection, "SELECT value FROM meta WHERE key = 'epoch';") is not string epoch)
            {
                epoch = NewEpoch();
                WriteEpoch(connection, epoch);
            }

            Execute(connection, "COMMIT;");
            _epoch = Task.FromResult(epoch);
        }
        catch
        {
            Execute(connection, "ROLLBACK;");
            throw;
        }
    }

    /// <summary>
    /// Version 1 to 2: client progress records get a last-used time (the migration's, so compaction keeps them for a whole
    /// client retention from now), and their keys, made before keys had namespaces, become <c>legacy:</c> and the SHA-256 of
    /// the old key. No old key stays: <c>converge serve --api-key KEY=SCOPES</c> made the secret itself the key.
    /// </summary>
    /// <remarks>The server finds a device's migrated record from its principal (<c>PrincipalIdentity.LegacyKeys</c>) at its next push.</remarks>
    private static void MigrateClientKeys(SqliteConnection connection)
    {
        connection.CreateFunction("converge_legacy_key", (string principal) => PrincipalIdentity.LegacyPrefix + PrincipalIdentity.HashHex(principal), isDeterministic: true);
        using (var command = connection.CreateCommand())
        {
            // secure_delete overwrites the freed bytes of the old keys instead of leaving them in free pages of the file.
            command.CommandText = $"""
                PRAGMA secure_delete = ON;
                ALTER TABLE clients ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
                UPDATE clients SET principal = converge_legacy_key(principal), last_used = $now;
                CREATE INDEX clients_last_used ON clients (last_used);
                UPDATE meta SET value = '{SchemaVersion}' WHERE key = 'schema_version';
                PRAGMA secure_delete = OFF;
                """;
            command.Parameters.AddWithValue("$now", TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
        }
    }

    public Task<string> ReadEpochAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _epoch ?? throw new InvalidOperationException("The Converge store is not initialized; call InitializeAsync first.");
    }

    public async Task<string> RotateEpochAsync(CancellationToken cancellationToken)
    {
        var epoch = NewEpoch();
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var connection = _writer ?? throw new InvalidOperationException("The Converge store is not initialized; call InitializeAsync first.");
            Execute(connection, "BEGIN IMMEDIATE;");
            try
            {
                WriteEpoch(connection, epoch);
                Execute(connection, "COMMIT;");
            }
            catch
            {
                if (connection.Handle is { } handle && SQLitePCL.raw.sqlite3_get_autocommit(handle) == 0)
                {
                    Execute(connection, "ROLLBACK;");
                }

                throw;
            }

            _epoch = Task.FromResult(epoch);
            Committed();
            return epoch;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>A new epoch: 128 random bits as 32 hex digits.</summary>
    private static string NewEpoch() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    private static void WriteEpoch(SqliteConnection connection, string epoch)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO meta (key, value) VALUES ('epoch', $epoch) ON CONFLICT (key) DO UPDATE SET value = excluded.value;";
        command.Parameters.AddWithValue("$epoch", epoch);
        command.ExecuteNonQuery();
    }

    public Task<HybridTimestamp?> ReadClockAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        var text = Scalar(connection, "SELECT value FROM meta WHERE key = 'clock';") as string;
        if (text is null)
        {
            return Task.FromResult<HybridTimestamp?>(null);
        }

        return HybridTimestamp.TryParse(text, out var last)
            ? Task.FromResult<HybridTimestamp?>(last)
            : throw new InvalidOperationException($"The Converge store '{_path}' holds an unreadable clock '{text}'.");
    }

    public async Task<ISyncTransaction> BeginAsync(CancellationToken cancellationToken)
    {
        var commands = Commands;
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            commands.Begin.ExecuteNonQuery();
            return new SqliteSyncTransaction(this, commands);
        }
        catch
        {
            _writeLock.Release();
            throw;
        }
    }

    /// <summary>Ends a transaction: rolls back unless committed, and lets the next writer in.</summary>
    internal void EndTransaction(bool committed)
    {
        try
        {
            // SQLite may have rolled back by itself (a full disk, an I/O error); only an open transaction is rolled back.
            if (!committed && !_disposed && _writer?.Handle is { } handle && SQLitePCL.raw.sqlite3_get_autocommit(handle) == 0)
            {
                Commands.Rollback.ExecuteNonQuery();
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        var page = ReadRawChanges(scope, after, limit, maxBytes, cancellationToken);
        var documents = new List<DocumentChange>(page.Documents.Count);
        foreach (var document in page.Documents)
        {
            documents.Add(new DocumentChange
            {
                Collection = document.Collection,
                DocumentId = document.Id,
                State = JsonSerializer.Deserialize(document.State.Span, ProtocolJson.DocumentState)
                    ?? throw new InvalidOperationException("A stored document state is null."),
            });
        }

        var conflicts = new List<ConflictRecord>(page.Conflicts.Count);
        foreach (var conflict in page.Conflicts)
        {
            conflicts.Add(JsonSerializer.Deserialize(conflict.Record.Span, ProtocolJson.ConflictRecord)
                ?? throw new InvalidOperationException("A stored conflict record is null."));
        }

        return Task.FromResult(new ChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = page.HasMore,
            ScopeRevision = page.ScopeRevision,
            MinValidCursor = page.MinValidCursor,
        });
    }

    public ValueTask<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ReadRawChanges(scope, after, limit, maxBytes, cancellationToken));

    /// <summary>Reads a page of a scope's changes from one snapshot, with each document's state as the JSON it is stored as, so a pull can send it without building it.</summary>
    public RawChangePage ReadRawChanges(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        using var transaction = connection.BeginTransaction(deferred: true);
        long scopeRevision = 0, minValid = 0;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT revision, min_valid FROM scopes WHERE scope = $scope;";
            command.Parameters.AddWithValue("$scope", scope);
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                scopeRevision = reader.GetInt64(0);
                minValid = reader.GetInt64(1);
            }
        }

        using var documentsCommand = connection.CreateCommand();
        documentsCommand.CommandText = "SELECT rev, collection, id, length(state), state FROM documents WHERE scope = $scope AND rev > $after ORDER BY rev LIMIT $limit;";
        documentsCommand.Parameters.AddWithValue("$scope", scope);
        documentsCommand.Parameters.AddWithValue("$after", after);
        documentsCommand.Parameters.AddWithValue("$limit", limit + 1);
        using var conflictsCommand = connection.CreateCommand();
        conflictsCommand.CommandText = "SELECT rev, length(record), record FROM conflicts WHERE scope = $scope AND rev > $after ORDER BY rev LIMIT $limit;";
        conflictsCommand.Parameters.AddWithValue("$scope", scope);
        conflictsCommand.Parameters.AddWithValue("$after", after);
        conflictsCommand.Parameters.AddWithValue("$limit", limit + 1);

        var documents = new List<RawDocument>();
        var conflicts = new List<RawConflict>();
        var hasMore = false;
        using (var documentRows = documentsCommand.ExecuteReader())
        using (var conflictRows = conflictsCommand.ExecuteReader())
        {
            var hasDocument = documentRows.Read();
            var hasConflict = conflictRows.Read();
            var taken = 0;
            long bytes = 0;
            while ((hasDocument || hasConflict) && taken < limit)
            {
                // The length is known before the blob is read: an item that would take the page past its bytes ends it.
                if (hasDocument && (!hasConflict || documentRows.GetInt64(0) < conflictRows.GetInt64(0)))
                {
                    var length = documentRows.GetInt64(3);
                    if (taken > 0 && bytes + length > maxBytes)
                    {
                        break;
                    }

                    // The blob as one array (sqlite3_column_blob); GetBytes would open a blob handle per call.
                    documents.Add(new RawDocument
                    {
                        Revision = documentRows.GetInt64(0),
                        Collection = documentRows.GetString(1),
                        Id = documentRows.GetString(2),
                        State = documentRows.GetFieldValue<byte[]>(4),
                    });
                    hasDocument = documentRows.Read();
                    bytes += length;
                }
                else
                {
                    var length = conflictRows.GetInt64(1);
                    if (taken > 0 && bytes + length > maxBytes)
                    {
                        break;
                    }

                    conflicts.Add(new RawConflict { Revision = conflictRows.GetInt64(0), Record = conflictRows.GetFieldValue<byte[]>(2) });
                    hasConflict = conflictRows.Read();
                    bytes += length;
                }

                taken++;
            }

            hasMore = hasDocument || hasConflict;
        }

        return new RawChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = hasMore,
            ScopeRevision = scopeRevision,
            MinValidCursor = minValid,
        };
    }

    public Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT length(record), record FROM conflicts WHERE scope = $scope AND status = 0 AND rev > $after ORDER BY rev LIMIT $limit;";
        command.Parameters.AddWithValue("$scope", scope);
        command.Parameters.AddWithValue("$after", after);
        command.Parameters.AddWithValue("$limit", limit + 1);
        using var reader = command.ExecuteReader();
        var records = new List<ConflictRecord>();
        long bytes = 0;
        var more = false;
        while (reader.Read())
        {
            var length = reader.GetInt64(0);
            if (records.Count == limit || (records.Count > 0 && bytes + length > maxBytes))
            {
                more = true;
                break;
            }

            records.Add(DeserializeConflict(reader, 1));
            bytes += length;
        }

        return Task.FromResult(new ConflictPage { Conflicts = records, HasMore = more });
    }

    public Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT record FROM conflicts WHERE id = $id;";
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        return Task.FromResult(reader.Read() ? DeserializeConflict(reader, 0) : null);
    }

    public async Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken)
    {
        var cutoff = removeBefore.ToUnixTimeMilliseconds();
        var clientsCutoff = clientsUnusedBefore.ToUnixTimeMilliseconds();
        var targets = FindCompactionTargets(cutoff);

        // Batches keep each write transaction short, so pushes are never held up for long.
        return await CompactionLoop.RunAsync(
            targets,
            (scope, from, highest) => WriteAsync(connection => CompactBatch(connection, scope, from, highest, cutoff)),
            () => WriteAsync(connection =>
            {
                using var command = connection.CreateCommand();
                command.CommandText = """
                    DELETE FROM clients WHERE (principal, client) IN (
                        SELECT principal, client FROM clients WHERE last_used < $cutoff LIMIT $limit);
                    """;
                command.Parameters.AddWithValue("$cutoff", clientsCutoff);
                command.Parameters.AddWithValue("$limit", CompactionLoop.ClientBatchSize);
                return command.ExecuteNonQuery();
            }),
            cancellationToken).ConfigureAwait(false);

        async Task<T> WriteAsync<T>(Func<SqliteConnection, T> write)
        {
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                var connection = _writer!;
                Execute(connection, "BEGIN IMMEDIATE;");
                try
                {
                    var result = write(connection);
                    Execute(connection, "COMMIT;");
                    return result;
                }
                catch
                {
                    Execute(connection, "ROLLBACK;");
                    throw;
                }
            }
            finally
            {
                _writeLock.Release();
            }
        }
    }

    /// <summary>Finds, per scope, the highest revision of a tombstone or resolved conflict older than the cutoff.</summary>
    private List<(string Scope, long Highest)> FindCompactionTargets(long cutoff)
    {
        using var connection = OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT scope, max(rev) FROM (
                SELECT scope, rev FROM documents WHERE deleted = 1 AND deleted_at < $cutoff
                UNION ALL
                SELECT scope, rev FROM conflicts WHERE status = 1 AND resolved_at < $cutoff)
            GROUP BY scope ORDER BY scope;
            """;
        command.Parameters.AddWithValue("$cutoff", cutoff);
        using var reader = command.ExecuteReader();
        var targets = new List<(string, long)>();
        while (reader.Read())
        {
            targets.Add((reader.GetString(0), reader.GetInt64(1)));
        }

        return targets;
    }


    /// <summary>
    /// Walks the next items of a scope up to <paramref name="highest"/>, in revision order: removes the old tombstones and
    /// resolved conflicts, moves every other item to a new revision, and raises the min valid cursor to the highest
    /// revision removed.
    /// </summary>
    /// <remarks>
    /// Moving the items that stay keeps every item of a scope above its min valid cursor, so a download from the start of
    /// the scope (a new client, or a reset) never holds a cursor below it and never gets reset again half-way.
    /// </remarks>
    private static CompactionBatch CompactBatch(SqliteConnection connection, string scope, long from, long highest, long cutoff)
    {
        long revision = 0, minValid = 0;
        using (var read = connection.CreateCommand())
        {
            read.CommandText = "SELECT revision, min_valid FROM scopes WHERE scope = $scope;";
            read.Parameters.AddWithValue("$scope", scope);
            using var reader = read.ExecuteReader();
            if (reader.Read())
            {
                revision = reader.GetInt64(0);
                minValid = reader.GetInt64(1);
            }
        }

        var items = new List<(long Rev, bool IsDocument, long RowId, bool Removable, byte[] Json)>();
        ReadItems(connection, "SELECT rev, rowid, coalesce(deleted = 1 AND deleted_at < $cutoff, 0), state FROM documents WHERE scope = $scope AND rev > $from AND rev <= $highest ORDER BY rev LIMIT $limit;", true);
        ReadItems(connection, "SELECT rev, rowid, coalesce(status = 1 AND resolved_at < $cutoff, 0), record FROM conflicts WHERE scope = $scope AND rev > $from AND rev <= $highest ORDER BY rev LIMIT $limit;", false);
        items.Sort((a, b) => a.Rev.CompareTo(b.Rev));
        var done = items.Count <= CompactionBatchSize;
        if (!done)
        {
            items.RemoveRange(CompactionBatchSize, items.Count - CompactionBatchSize);
        }

        int tombstones = 0, conflicts = 0, moved = 0;
        using var deleteDocument = Prepare(connection, "DELETE FROM documents WHERE rowid = $rowid;", "$rowid");
        using var deleteConflict = Prepare(connection, "DELETE FROM conflicts WHERE rowid = $rowid;", "$rowid");
        using var moveDocument = Prepare(connection, "UPDATE documents SET rev = $rev, state = $json WHERE rowid = $rowid;", "$rowid", "$rev", "$json");
        using var moveConflict = Prepare(connection, "UPDATE conflicts SET rev = $rev, record = $json WHERE rowid = $rowid;", "$rowid", "$rev", "$json");
        foreach (var item in items)
        {
            if (item.Removable)
            {
                var delete = item.IsDocument ? deleteDocument : deleteConflict;
                delete.Parameters[0].Value = item.RowId;
                delete.ExecuteNonQuery();
                minValid = Math.Max(minValid, item.Rev);
                _ = item.IsDocument ? tombstones++ : conflicts++;
                continue;
            }

            var next = ++revision;
            var move = item.IsDocument ? moveDocument : moveConflict;
            move.Parameters[0].Value = item.RowId;
            move.Parameters[1].Value = next;
            move.Parameters[2].Value = item.IsDocument
                ? JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.DocumentState) with { Revision = next }, ProtocolJson.DocumentState)
                : JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.ConflictRecord) with { Revision = next }, ProtocolJson.ConflictRecord);
            move.ExecuteNonQuery();
            moved++;
        }

        using (var write = connection.CreateCommand())
        {
            write.CommandText = "UPDATE scopes SET revision = $revision, min_valid = $min WHERE scope = $scope;";
            write.Parameters.AddWithValue("$scope", scope);
            write.Parameters.AddWithValue("$revision", revision);
            write.Parameters.AddWithValue("$min", minValid);
            write.ExecuteNonQuery();
        }

        return new CompactionBatch(tombstones, conflicts, moved, items.Count > 0 ? items[^1].Rev : highest, done);

        void ReadItems(SqliteConnection c, string sql, bool isDocument)
        {
            using var command = c.CreateCommand();
            command.CommandText = sql;
            command.Parameters.AddWithValue("$scope", scope);
            command.Parameters.AddWithValue("$from", from);
            command.Parameters.AddWithValue("$highest", highest);
            command.Parameters.AddWithValue("$cutoff", cutoff);
            command.Parameters.AddWithValue("$limit", CompactionBatchSize + 1);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                items.Add((reader.GetInt64(0), isDocument, reader.GetInt64(1), reader.GetBoolean(2), reader.GetFieldValue<byte[]>(3)));
            }
        }
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        return command;
    }

    private static T Deserialize<T>(byte[] json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.Deserialize(json, typeInfo) ?? throw new InvalidOperationException($"A stored {typeof(T).Name} is null.");

    public Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        _ = Scalar(connection, "SELECT value FROM meta WHERE key = 'schema_version';")
            ?? throw new InvalidOperationException($"The Converge store '{_path}' has no schema version.");
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        // Wait for the transaction in flight, if any, so its connection is not pulled from under it.
        var acquired = _writeLock.Wait(TimeSpan.FromSeconds(30));
        _disposed = true;
        _ready = false;
        if (!acquired)
        {
            // A transaction still holds the writer after 30 s: closing its connection under it could leave a torn
            // commit, so the connections are left to the process's end; SQLite's WAL recovers what was committed.
            return;
        }

        CloseConnections();
        _writeLock.Release();
    }

    /// <summary>Notes a commit, so the WAL is checkpointed in the background soon after.</summary>
    internal void Committed() => _checkpointer?.Committed(_writer is { } writer ? WalCheckpointer.TakePagesWritten(writer) : 0);

    private void CloseConnections()
    {
        _checkpointer?.Dispose();
        _checkpointer = null;
        _commands?.Dispose();
        _commands = null;
        if (_writer is not null)
        {
            try
            {
                Execute(_writer, "PRAGMA wal_checkpoint(PASSIVE);");
            }
            catch (SqliteException)
            {
                // Readers elsewhere keep the WAL; the next open folds it in.
            }

            SqliteConnection.ClearPool(_writer);
            _writer.Dispose();
            _writer = null;
        }

        _lockFile?.Dispose();
        _lockFile = null;
    }

    private WriterCommands Commands =>
        _commands ?? (_disposed
            ? throw new ObjectDisposedException(nameof(SqliteSyncStore))
            : throw new InvalidOperationException("The Converge store is not initialized; call InitializeAsync first."));

    private SqliteConnection OpenRead()
    {
        if (!_ready)
        {
            _ = Commands;
        }

        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

    internal static ConflictRecord DeserializeConflict(SqliteDataReader reader, int ordinal) =>
        JsonSerializer.Deserialize(reader.GetFieldValue<byte[]>(ordinal), ProtocolJson.ConflictRecord)
        ?? throw new InvalidOperationException("A stored conflict record is null.");

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
