using Converge.Sqlite;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;
using static Converge.Server.Storage.Sqlite.SqliteSql;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The embedded SQLite store: WAL, one serialized writer connection, reads on pooled connections.</summary>
/// <remarks>
/// Each document is one row holding its whole <see cref="DocumentState"/> as JSON, keyed by (scope, collection, id) and
/// unique by (scope, rev), so a pull is an index seek on (scope, rev) whose cost follows the changes, not the store.
/// The writer's statements are prepared once for the life of the store. The store owns the connections, the write turn
/// and the epoch; the schema (<see cref="SqliteSchema"/>), the reads (<see cref="SqliteChangeReader"/>), the write
/// transactions (<see cref="SqliteSyncTransaction"/>) and compaction (<see cref="SqliteCompaction"/>) are parts of their own.
/// </remarks>
internal sealed class SqliteSyncStore : ISyncStore, IRawChangeReader, IDisposable
{
    private readonly string _path;
    private readonly SynchronousMode _synchronous;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _initLock = new(1, 1);
    private readonly SqliteChangeReader _reads;
    private readonly SqliteCompaction _compaction;
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
        _reads = new SqliteChangeReader(this);
        _compaction = new SqliteCompaction(this);
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
            _epoch = Task.FromResult(SqliteSchema.Ensure(_writer, _path));
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

    public Task<string> ReadEpochAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _epoch ?? throw new InvalidOperationException("The Converge store is not initialized; call InitializeAsync first.");
    }

    public async Task<string> RotateEpochAsync(CancellationToken cancellationToken)
    {
        var epoch = SqliteSchema.NewEpoch();
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var connection = _writer ?? throw new InvalidOperationException("The Converge store is not initialized; call InitializeAsync first.");
            Execute(connection, "BEGIN IMMEDIATE;");
            try
            {
                SqliteSchema.WriteEpoch(connection, epoch);
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

    public Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        _reads.ReadChangesAsync(scope, after, limit, maxBytes, cancellationToken);

    public ValueTask<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        _reads.ReadRawChangesAsync(scope, after, limit, maxBytes, cancellationToken);

    public Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        _reads.ReadOpenConflictsAsync(scope, after, limit, maxBytes, cancellationToken);

    public Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken) =>
        _reads.ReadConflictAsync(id, cancellationToken);

    public Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken) =>
        _compaction.CompactAsync(removeBefore, clientsUnusedBefore, cancellationToken);

    /// <summary>Runs a short write of its own on the writer's connection, in its turn: one transaction, committed when the write returns, rolled back when it throws.</summary>
    internal async Task<T> WriteAsync<T>(Func<SqliteConnection, T> write, CancellationToken cancellationToken)
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

    /// <summary>Opens a pooled connection for reads outside the writer's transactions.</summary>
    internal SqliteConnection OpenRead()
    {
        if (!_ready)
        {
            _ = Commands;
        }

        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

}
