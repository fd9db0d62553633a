using Converge.Sqlite;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Tests.Stores;

/// <summary>
/// The background checkpointer with the store's write turn: a WAL that writes kept growing during its passes is brought
/// to start over, by chasing large writes outside the turn and copying only a small rest inside it, so no commit runs
/// SQLite's inline checkpoint of tens of megabytes while every writer waits.
/// </summary>
public sealed class WalCheckpointerTests : IDisposable
{
    private const int Page = 4096;

    private readonly string _directory = Directory.CreateTempSubdirectory("converge-wal-").FullName;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly SqliteConnection _writer;
    private readonly string _connectionString;
    private int _row;

    public WalCheckpointerTests()
    {
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, "w.db"), Pooling = false }.ToString();
        _writer = new SqliteConnection(_connectionString);
        _writer.Open();
        Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; " + WalCheckpointer.TurnWriterPragmas);
        Execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);");
        WalCheckpointer.TakePagesWritten(_writer);
    }

    public void Dispose()
    {
        _writer.Dispose();
        _turn.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_small_write_during_the_pass_is_copied_inside_the_turn_and_the_next_write_starts_the_WAL_over()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, _turn, background: false);
        checkpointer.Committed(Write(1_200));
        var during = Begin(20);
        checkpointer.PassCompleted = pass => checkpointer.Committed(during.Commit());

        var round = await checkpointer.RunRoundAsync(CancellationToken.None);

        Assert.Equal((2, true), round);
        Write(10);
        Assert.InRange(WalPages(), 1, 40);
    }

    [Fact]
    public async Task Without_the_turn_the_same_writes_leave_the_WAL_growing()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, writeTurn: null, background: false);
        checkpointer.Committed(Write(1_200));
        var during = Begin(20);
        checkpointer.PassCompleted = pass => checkpointer.Committed(during.Commit());

        var round = await checkpointer.RunRoundAsync(CancellationToken.None);

        Assert.Equal((1, false), round);
        Write(10);
        Assert.True(WalPages() > 1_200, "The WAL started over although no checkpoint copied it whole before a write began.");
    }

    [Fact]
    public async Task A_large_write_during_the_pass_is_chased_outside_the_turn()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, _turn, background: false);
        checkpointer.Committed(Write(1_200));
        var during = Begin(1_200);
        checkpointer.PassCompleted = pass =>
        {
            if (pass == 1)
            {
                checkpointer.Committed(during.Commit());
            }
        };

        var round = await checkpointer.RunRoundAsync(CancellationToken.None);

        // No write ran during the second pass: it copied the WAL whole, and no writer had to wait for a turn.
        Assert.Equal((2, false), round);
        Write(10);
        Assert.InRange(WalPages(), 1, 40);
    }

    [Fact]
    public async Task Writes_that_never_pause_get_the_turn_after_the_last_pass()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, _turn, background: false);
        checkpointer.Committed(Write(1_200));
        var during = Begin(300);
        checkpointer.PassCompleted = pass =>
        {
            checkpointer.Committed(during.Commit());
            if (pass < 8)
            {
                during = Begin(300);
            }
        };

        var round = await checkpointer.RunRoundAsync(CancellationToken.None);

        Assert.Equal((9, true), round);
        Write(10);
        Assert.InRange(WalPages(), 1, 40);
    }

    [Fact]
    public async Task A_short_WAL_is_left_to_grow()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, _turn, background: false);
        checkpointer.Committed(Write(100));
        var during = Begin(20);
        checkpointer.PassCompleted = pass => checkpointer.Committed(during.Commit());

        var round = await checkpointer.RunRoundAsync(CancellationToken.None);

        Assert.Equal((1, false), round);
    }

    [Fact]
    public async Task The_turn_is_awaited_while_a_writer_holds_it()
    {
        using var checkpointer = new WalCheckpointer(_connectionString, _turn, background: false);
        checkpointer.Committed(Write(1_200));
        var during = Begin(20);
        checkpointer.PassCompleted = pass => checkpointer.Committed(during.Commit(release: false));

        var round = checkpointer.RunRoundAsync(CancellationToken.None);

        Assert.False(round.IsCompleted);
        _turn.Release();
        Assert.Equal((2, true), await round);
    }

    /// <summary>Writes about this many pages in one transaction, in the write turn, as a store's writer does.</summary>
    /// <returns>The pages the commit wrote.</returns>
    private long Write(int pages) => Begin(pages).Commit();

    /// <summary>Takes the write turn and writes about this many pages in a transaction left open: a write that began before a pass.</summary>
    private PendingWrite Begin(int pages)
    {
        _turn.Wait();
        var transaction = _writer.BeginTransaction();
        using var command = _writer.CreateCommand();
        command.CommandText = "INSERT INTO t (id, v) VALUES ($id, zeroblob($n));";
        var id = command.Parameters.Add("$id", SqliteType.Integer);
        command.Parameters.AddWithValue("$n", Page - 200);
        for (var i = 0; i < pages; i++)
        {
            id.Value = ++_row;
            command.ExecuteNonQuery();
        }

        return new PendingWrite(this, transaction);
    }

    /// <summary>The WAL's length in pages, as a passive checkpoint on another connection reports it.</summary>
    private long WalPages()
    {
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(0, reader.GetInt64(0));
        return reader.GetInt64(1);
    }

    private void Execute(string sql)
    {
        using var command = _writer.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private sealed class PendingWrite(WalCheckpointerTests owner, SqliteTransaction transaction)
    {
        /// <summary>Commits, and gives the turn back unless told not to.</summary>
        /// <returns>The pages the commit wrote.</returns>
        public long Commit(bool release = true)
        {
            transaction.Commit();
            transaction.Dispose();
            var pages = WalCheckpointer.TakePagesWritten(owner._writer);
            if (release)
            {
                owner._turn.Release();
            }

            return pages;
        }
    }
}
