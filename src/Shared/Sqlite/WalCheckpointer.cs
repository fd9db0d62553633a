using Microsoft.Data.Sqlite;

namespace Converge.Sqlite;

/// <summary>Folds a store's WAL into its database file on a background connection, soon after commits, so commits do not stall on it.</summary>
/// <remarks>
/// A checkpoint copies the WAL's pages into the database file and syncs both. Run inline by SQLite every thousand pages,
/// it stalls whichever commit crosses the mark, for as long as the disk takes. Here a passive checkpoint follows writes
/// by a short delay instead; SQLite's inline one is kept, four times rarer, because under sustained writes the WAL
/// restarts from its beginning only after a checkpoint run by the writer itself, which then has little left to copy.
/// </remarks>
internal sealed class WalCheckpointer : IDisposable
{
    public const string WriterPragmas = "PRAGMA wal_autocheckpoint=4000; PRAGMA journal_size_limit=67108864;";

    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(100);

    private readonly string _connectionString;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _committed = new(0, 1);
    private readonly Task _loop;
    private int _pending;

    public WalCheckpointer(string connectionString)
    {
        _connectionString = connectionString;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Notes a commit: a checkpoint follows shortly, unless one is already due.</summary>
    public void Committed()
    {
        if (Interlocked.Exchange(ref _pending, 1) == 0)
        {
            _committed.Release();
        }
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

        _stop.Dispose();
        _committed.Dispose();
    }

    private async Task LoopAsync()
    {
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
            while (true)
            {
                await _committed.WaitAsync(_stop.Token).ConfigureAwait(false);
                await Task.Delay(Delay, _stop.Token).ConfigureAwait(false);
                Volatile.Write(ref _pending, 0);
                try
                {
                    command.ExecuteNonQuery();
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
}
