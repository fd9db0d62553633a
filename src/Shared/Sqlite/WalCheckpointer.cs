using Microsoft.Data.Sqlite;

namespace Converge.Sqlite;

/// <summary>Folds a store's WAL into its database file on a background connection, soon after commits, so commits do not stall on it.</summary>
/// <remarks>
/// <para>
/// A checkpoint copies the WAL's pages into the database file and syncs both. Run inline by SQLite every thousand pages,
/// it stalls whichever commit crosses the mark, for as long as the disk takes. Here a passive checkpoint follows writes
/// by a short delay instead, on its own connection, while writers go on.
/// </para>
/// <para>
/// The WAL starts over from its beginning only when a write begins after a checkpoint that copied all of it. Under
/// sustained writes a passive checkpoint never quite catches up, so something must give the WAL a moment with no writer.
/// Without the store's write turn, SQLite's inline checkpoint is kept for that, four times rarer than its default. With
/// the write turn given to the constructor, the checkpointer takes it itself, only to copy
/// the little the passes outside it left behind: a turn as short as a small commit, instead of a commit that copies and
/// syncs tens of megabytes while every writer waits. SQLite's inline checkpoint then stays as a backstop only.
/// </para>
/// </remarks>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>The writer's pragmas when the checkpointer runs without the store's write turn.</summary>
    public const string WriterPragmas = "PRAGMA wal_autocheckpoint=4000; PRAGMA journal_size_limit=67108864;";

    /// <summary>The writer's pragmas when the checkpointer has the store's write turn: SQLite's inline checkpoint is a backstop, at 64 MB.</summary>
    public const string TurnWriterPragmas = "PRAGMA wal_autocheckpoint=16000; PRAGMA journal_size_limit=67108864;";

    /// <summary>A WAL at least this long (pages, 4 MB) is brought to start over; a shorter one is left to grow until it is.</summary>
    private const int RestartFrames = 1000;

    /// <summary>What may be left for the turn to copy (pages, 1 MB): about what a small commit syncs.</summary>
    private const int TurnFrames = 256;

    /// <summary>Passes, at most, before the turn copies the rest whatever its size.</summary>
    private const int MaxPasses = 8;

    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(100);

    private readonly string _connectionString;
    private readonly SemaphoreSlim? _writeTurn;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _committed = new(0, 1);
    private readonly Task _loop;
    private int _pending;
    private long _written;
    private SqliteConnection? _connection;
    private SqliteCommand? _command;

    /// <summary>Starts the checkpointer of the database a connection string opens.</summary>
    /// <param name="connectionString">The store's connection string.</param>
    /// <param name="writeTurn">The store's write turn, held by each write transaction: see the remarks of the type. The writer then uses <see cref="TurnWriterPragmas"/>.</param>
    public WalCheckpointer(string connectionString, SemaphoreSlim? writeTurn = null)
        : this(connectionString, writeTurn, background: true)
    {
    }

    /// <summary>Starts a checkpointer that runs in the background, or only when <see cref="RunRoundAsync"/> is called.</summary>
    internal WalCheckpointer(string connectionString, SemaphoreSlim? writeTurn, bool background)
    {
        _connectionString = connectionString;
        _writeTurn = writeTurn;
        _loop = background ? Task.Run(LoopAsync) : Task.CompletedTask;
    }

    /// <summary>Notes a commit: a checkpoint follows shortly, unless one is already due.</summary>
    /// <param name="pages">The pages the commit wrote to the WAL, when the store knows them; with the write turn, they decide when the turn is short enough to take.</param>
    public void Committed(long pages = 0)
    {
        Interlocked.Add(ref _written, pages);
        if (Interlocked.Exchange(ref _pending, 1) == 0)
        {
            _committed.Release();
        }
    }

    /// <summary>Reads and resets the pages a connection has written since the last call: what its commits added to the WAL.</summary>
    /// <param name="connection">The store's writer.</param>
    /// <returns>The pages, or 0 when the connection is closed.</returns>
    public static long TakePagesWritten(SqliteConnection connection)
    {
        const int CacheWrite = 9; // SQLITE_DBSTATUS_CACHE_WRITE
        return connection.Handle is { } handle && SQLitePCL.raw.sqlite3_db_status(handle, CacheWrite, out var pages, out _, 1) == SQLitePCL.raw.SQLITE_OK ? pages : 0;
    }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // A failed checkpoint leaves the WAL for the next checkpoint or open to fold in; nothing is lost.
        }

        _command?.Dispose();
        _connection?.Dispose();
        _stop.Dispose();
        _committed.Dispose();
    }

    /// <summary>Called after each pass of a round with the pass's number: lets a test write while a pass runs.</summary>
    internal Action<int>? PassCompleted { get; set; }

    /// <summary>Runs one round on the checkpointer's own connection: what the background loop does after commits.</summary>
    /// <param name="cancellationToken">Stops a wait for the write turn.</param>
    /// <returns>How many passes ran and whether the write turn was taken.</returns>
    internal async Task<(int Passes, bool TookTurn)> RunRoundAsync(CancellationToken cancellationToken)
    {
        if (_connection is null)
        {
            _connection = new SqliteConnection(_connectionString);
            _connection.Open();
            _command = _connection.CreateCommand();
            _command.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
        }

        var command = _command!;
        var before = Volatile.Read(ref _written);
        var (log, _) = Checkpoint(command);
        PassCompleted?.Invoke(1);
        if (_writeTurn is null || log < RestartFrames)
        {
            return (1, false);
        }

        // The WAL is long. It starts over only when a write begins after a checkpoint copied all of it, and writes may
        // have gone on during the pass: chase them with more passes while they wrote much, then copy the little they
        // left inside the write turn, so the next write starts the WAL over.
        for (var pass = 1; ; pass++)
        {
            var since = Volatile.Read(ref _written) - before;
            if (since == 0)
            {
                return (pass, false);
            }

            if (since <= TurnFrames || pass >= MaxPasses)
            {
                await _writeTurn.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    // Writes that came while the turn was awaited are copied here too, if they are few.
                    if (Volatile.Read(ref _written) - before <= TurnFrames || pass >= MaxPasses)
                    {
                        Checkpoint(command);
                        return (pass + 1, true);
                    }
                }
                finally
                {
                    _writeTurn.Release();
                }
            }

            before = Volatile.Read(ref _written);
            Checkpoint(command);
            PassCompleted?.Invoke(pass + 1);
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            while (true)
            {
                await _committed.WaitAsync(_stop.Token).ConfigureAwait(false);
                await Task.Delay(Delay, _stop.Token).ConfigureAwait(false);
                Volatile.Write(ref _pending, 0);
                try
                {
                    await RunRoundAsync(_stop.Token).ConfigureAwait(false);
                }
                catch (SqliteException)
                {
                    // Busy or I/O trouble: the next round tries again, and the WAL keeps every commit meanwhile.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Runs one passive checkpoint.</summary>
    /// <returns>The WAL's length and how much of it is now in the database file, in pages; -1 and -1 when a reader or writer kept it from running.</returns>
    private static (long Log, long Copied) Checkpoint(SqliteCommand command)
    {
        using var reader = command.ExecuteReader();
        return reader.Read() && reader.GetInt64(0) == 0 ? (reader.GetInt64(1), reader.GetInt64(2)) : (-1, -1);
    }
}
