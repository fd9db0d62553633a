using Converge.Sqlite;
using Converge.Work.Storage;
using Microsoft.Data.Sqlite;

namespace Converge.Work;

/// <summary>
/// The SQLite work store. One write connection, used only by the scheduler's loop, plus pooled read connections for queries.
/// </summary>
/// <remarks>
/// A local file answers at once, so every call completes synchronously and returns a completed task. This file opens
/// the store and runs its transactions; the writes, the reads and the schema with the command cache are in the other
/// parts of the class.
/// </remarks>
internal sealed partial class SqliteWorkStore : IWorkStore
{
    public const int SchemaVersion = 1;

    private const int BusyTimeoutMilliseconds = 30_000;
    private const int SQLITE_IOERR = 10;
    private const int SQLITE_FULL = 13;

    private static readonly bool[] s_priorities = [true, false];

    private const string Columns =
        "seq, id, worker_name, state, input, output, progress, tags, unique_name, input_merger, requires, initial_delay_ms, " +
        "interval_ms, flex_ms, backoff_policy, backoff_delay_ms, expedited, out_of_quota, last_enqueue_time, run_attempt_count, " +
        "period_count, generation, stop_reason, failure_reason, next_run_at, override_constraints, has_prerequisites, created_at, has_dependents";

    private readonly string _connectionString;
    private readonly SqliteConnection _write;
    private readonly FileStream? _lock;
    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);
    private bool _inTransaction;
    private StoreWakeSignal? _wake;
    private bool _signalAfterCommit;
    private bool _wakesScheduler;

    private SqliteWorkStore(string path, WorkDurability durability, FileStream? lockFile)
    {
        Path = path;
        _lock = lockFile;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _write = new SqliteConnection(_connectionString);
        _write.Open();
        // Small pages for a new store: a work row is a few hundred bytes, and every commit writes each page it
        // touched (table, id index, due index) to the WAL, so 1 KB pages write a quarter of what 4 KB pages do.
        // An existing store keeps the page size it was made with.
        Execute(_write, "PRAGMA page_size=1024;");
        Execute(_write, "PRAGMA journal_mode=WAL;");
        Execute(_write, durability == WorkDurability.PowerLoss ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
        Execute(_write, $"PRAGMA busy_timeout={BusyTimeoutMilliseconds};");
        Execute(_write, "PRAGMA temp_store=MEMORY;");
        // Checkpoints run on a background connection soon after commits, not inline on the commit path.
        Execute(_write, WalCheckpointer.WriterPragmas);
        EnsureSchema();
        _checkpointer = new WalCheckpointer(_connectionString);
    }

    public string Path { get; }

    private readonly WalCheckpointer _checkpointer;

    /// <summary>Gets or sets the time of the current batch, in Unix milliseconds: when rows that finish in it finished.</summary>
    public long BatchTime { get; set; }

    /// <inheritdoc />
    public TimeSpan? MaintenanceInterval => null;

    /// <summary>Gets <see langword="false"/>: one scheduler per file.</summary>
    public bool IsShared => false;

    /// <summary>Gets 64: with few workers and short work, almost every batch frees a slot, and one due query serves many.</summary>
    public int DueReadAhead => 64;

    /// <summary>Opens the store of a scheduler (which takes the store's lock) or of an enqueue-only instance, with its wake signal.</summary>
    public static SqliteWorkStore Open(WorkStoreContext context)
    {
        var options = context.Options;
        var store = Open(options.DatabasePath, options.Durability, exclusive: !options.EnqueueOnly);
        try
        {
            store._wakesScheduler = options.EnqueueOnly;
            store._wake = options.EnqueueOnly
                ? StoreWakeSignal.Sender(store.Path, options.WakeBySocket)
                : StoreWakeSignal.Listen(store.Path, () => context.OnWake(true));
        }
        catch
        {
            store.Close();
            throw;
        }

        return store;
    }

    /// <summary>Opens a store. With <paramref name="exclusive"/>, takes the store's scheduler lock or fails.</summary>
    public static SqliteWorkStore Open(string path, WorkDurability durability, bool exclusive)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        FileStream? lockFile = null;
        if (exclusive)
        {
            try
            {
                // FileShare.None takes an exclusive advisory lock (flock on Unix) that the OS releases if the process dies.
                lockFile = new FileStream(full + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            }
            catch (IOException e)
            {
                throw new WorkStoreLockedException(full, e);
            }
        }

        try
        {
            return new SqliteWorkStore(full, durability, lockFile);
        }
        catch
        {
            lockFile?.Dispose();
            throw;
        }
    }

    /// <summary>A connection for queries, from the pool.</summary>
    public SqliteConnection OpenRead()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }

    /// <summary>Closes the store: a local file closes at once.</summary>
    private void Close()
    {
        _wake?.Dispose();
        _checkpointer.Dispose();
        try
        {
            // Passive: never waits for other processes' readers or writers.
            Execute(_write, "PRAGMA wal_checkpoint(PASSIVE);");
        }
        catch (SqliteException)
        {
            // Readers elsewhere keep the WAL; it is checkpointed later.
        }

        foreach (var command in _commands.Values)
        {
            command.Dispose();
        }

        _commands.Clear();
        _write.Dispose();
        _lock?.Dispose();
    }

    // ---- transactions (write connection) ----

    // Transactions are plain SQL on cached, prepared commands rather than SqliteTransaction objects, which prepare
    // their BEGIN and COMMIT anew each time: on the one-commit-per-enqueue path that is a measurable share.
    public ValueTask BeginAsync()
    {
        Command("begin", "BEGIN IMMEDIATE;").ExecuteNonQuery();
        _inTransaction = true;
        return ValueTask.CompletedTask;
    }

    /// <summary>Begins a write transaction only if no other connection holds the write lock; never waits.</summary>
    /// <returns>Whether the transaction began.</returns>
    public bool TryBeginNow()
    {
        // Straight to SQLite with no busy timeout: Microsoft.Data.Sqlite would retry a busy BEGIN for its command timeout.
        var handle = _write.Handle!;
        SQLitePCL.raw.sqlite3_busy_timeout(handle, 0);
        try
        {
            var rc = SQLitePCL.raw.sqlite3_exec(handle, "BEGIN IMMEDIATE;");
            if (rc == SQLitePCL.raw.SQLITE_OK)
            {
                _inTransaction = true;
                return true;
            }

            if (rc is SQLitePCL.raw.SQLITE_BUSY or SQLitePCL.raw.SQLITE_LOCKED)
            {
                return false;
            }

            throw new SqliteException($"BEGIN failed: {SQLitePCL.raw.sqlite3_errmsg(handle).utf8_to_string()}", rc);
        }
        finally
        {
            SQLitePCL.raw.sqlite3_busy_timeout(handle, BusyTimeoutMilliseconds);
        }
    }

    public ValueTask CommitAsync()
    {
        Command("commit", "COMMIT;").ExecuteNonQuery();
        _inTransaction = false;
        _checkpointer.Committed();
        if (_signalAfterCommit)
        {
            _signalAfterCommit = false;
            _wake?.Signal();
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask RollbackAsync()
    {
        _signalAfterCommit = false;
        if (!_inTransaction)
        {
            return ValueTask.CompletedTask;
        }

        _inTransaction = false;
        try
        {
            Command("rollback", "ROLLBACK;").ExecuteNonQuery();
        }
        catch (SqliteException) when (_write.State == System.Data.ConnectionState.Open)
        {
            // SQLite already rolled back (some I/O and full-disk errors do that): nothing is left to undo.
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public bool IsStoreFailure(Exception e) => e is SqliteException { SqliteErrorCode: SQLITE_FULL or SQLITE_IOERR };

    /// <inheritdoc />
    /// <remarks>
    /// Only an enqueue-only instance signals, after the commit (so the scheduler never looks before the rows are
    /// there): the scheduler is the only process that runs work, so it has nobody to tell.
    /// </remarks>
    public void SignalWrites(bool reconcile) => _signalAfterCommit = _wakesScheduler;

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<Guid>> MaintainAsync(long now) => new([]);

    public ValueTask SavepointAsync(string name)
    {
        Command("savepoint_" + name, $"SAVEPOINT {name};").ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask ReleaseAsync(string name)
    {
        Command("release_" + name, $"RELEASE {name};").ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask RollbackToAsync(string name)
    {
        Run($"ROLLBACK TO {name};");
        Run($"RELEASE {name};");
        return ValueTask.CompletedTask;
    }
}
