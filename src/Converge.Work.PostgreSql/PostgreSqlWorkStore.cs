using System.Globalization;
using Converge.PostgreSql;
using Converge.Work.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Converge.Work;

/// <summary>
/// The work store shared by several nodes: one PostgreSQL database, one write connection per node used only by its
/// scheduler loop, pooled connections for queries, and one listening connection for wake-ups.
/// </summary>
/// <remarks>
/// <para>
/// Round trips are what a node's throughput is made of, so the transaction control the engine asks for (BEGIN,
/// savepoints around each op, the wake-up NOTIFY) is not sent on its own: it is queued and goes out in front of the next
/// statement, in one batch. A batch whose ops wrote nothing costs no round trip at all.
/// </para>
/// <para>
/// Claims: the due query locks the rows it returns with <c>FOR UPDATE SKIP LOCKED</c>, so two nodes claiming at once
/// get different rows and never wait for each other. A claimed row records its node and a lease, renewed by
/// <see cref="MaintainAsync"/>; a row whose lease ran out is enqueued again by whichever node looks first.
/// </para>
/// <para>
/// Every call after the store is open waits for the server without holding a thread. This file opens the store, runs
/// its transactions and keeps the leases; the writes, the reads, the batching and the schema with the wake-ups are in
/// the other parts of the class.
/// </para>
/// </remarks>
internal sealed partial class PostgreSqlWorkStore : IWorkStore
{
    private const int SchemaVersion = 1;

    /// <summary>The key of the advisory lock under which a node creates or migrates the schema ("CvgWork!" in ASCII).</summary>
    private const long MigrationLockKey = 0x4376_6757_6F72_6B21L;

    private const string Columns =
        "seq, id, worker_name, state, input, output, progress, tags, unique_name, input_merger, requires, initial_delay_ms, " +
        "interval_ms, flex_ms, backoff_policy, backoff_delay_ms, expedited, out_of_quota, last_enqueue_time, run_attempt_count, " +
        "period_count, generation, stop_reason, failure_reason, next_run_at, override_constraints, has_prerequisites, created_at, " +
        "has_dependents, owner";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _s;
    private readonly string _node;
    private readonly TimeSpan _lease;
    private readonly string _channel;
    private readonly Action<bool> _onWake;
    private readonly ILogger _logger;
    private readonly List<string> _pending = [];
    private readonly Dictionary<string, string> _savepoints = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _listener;
    private readonly string _notifyRuns;
    private readonly string _notifySchedule;
    private readonly NpgsqlConnection? _nameLock;
    private NpgsqlConnection? _write;
    private long _savepointSeq;
    private bool _inTransaction;
    private bool _sentInTransaction;
    private int _signal; // 0 none, 1 runs only, 2 schedule

    private PostgreSqlWorkStore(NpgsqlDataSource dataSource, PostgreSqlWorkStoreOptions options, WorkStoreContext context)
    {
        _dataSource = dataSource;
        _s = options.Schema;
        _node = options.NodeName ?? string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}");
        _lease = options.LeaseDuration;
        _channel = _s + "_wake";
        _onWake = context.OnWake;
        _logger = context.LoggerFactory.CreateLogger("Converge.Work.PostgreSql");
        var csb = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        Path = $"postgresql://{csb.Host}:{csb.Port}/{csb.Database} (schema {_s})";
        MaintenanceInterval = _lease / 3;
        // The payload is a literal: quotes doubled (standard_conforming_strings), and the name has no control characters.
        var payload = _node.Replace("'", "''", StringComparison.Ordinal);
        _notifyRuns = $"SELECT pg_notify('{_channel}', '{payload}|c')";
        _notifySchedule = $"SELECT pg_notify('{_channel}', '{payload}|r')";
        Migrate();
        if (options.NodeName is not null)
        {
            // A chosen name must be one node's only: two processes under one name would take each other's runs for
            // their own. The session lock goes with this connection, so a node that dies frees its name.
            _nameLock = _dataSource.OpenConnection();
            using var take = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _nameLock) { Parameters = { new() { Value = _s + "/node/" + _node } } };
            if (!(bool)take.ExecuteScalar()!)
            {
                _nameLock.Dispose();
                throw new InvalidOperationException($"Another node of the work store {Path} runs under the name '{_node}'; every node needs a name of its own (PostgreSqlWorkStoreOptions.NodeName).");
            }
        }

        _write = _dataSource.OpenConnection();
        _listener = Task.Run(() => ListenAsync(_stop.Token));
    }

    public string Path { get; }

    public long BatchTime { get; set; }

    public TimeSpan? MaintenanceInterval { get; }

    /// <summary>Gets <see langword="true"/>: several nodes share the store.</summary>
    public bool IsShared => true;

    /// <summary>Gets 0: the due query locks what it returns until the claim commits, so it reads only what it claims.</summary>
    public int DueReadAhead => 0;

    /// <summary>Gets the name this node's claims are recorded under.</summary>
    internal string NodeName => _node;

    public static PostgreSqlWorkStore Open(string connectionString, PostgreSqlWorkStoreOptions options, WorkStoreContext context)
    {
        var builder = PostgresListener.Builder(connectionString, "Converge.Work", maxAutoPrepare: 64);

        builder.UseLoggerFactory(context.LoggerFactory);
        var dataSource = builder.Build();
        try
        {
            return new PostgreSqlWorkStore(dataSource, options, context);
        }
        catch (NpgsqlException e)
        {
            dataSource.Dispose();
            throw new InvalidOperationException($"Cannot open the Converge.Work store in PostgreSQL database '{builder.ConnectionStringBuilder.Database}': {e.Message}", e);
        }
        catch
        {
            dataSource.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        var stopped = false;
        try
        {
            await _listener.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            stopped = true;
        }
        catch (TimeoutException)
        {
            // The listener is stuck on the network; the data source's disposal below closes its connection.
        }
        catch (Exception)
        {
            stopped = true; // the listener logs its own failures
        }

        if (_write is not null)
        {
            await _write.DisposeAsync().ConfigureAwait(false);
        }

        if (_nameLock is not null)
        {
            await _nameLock.DisposeAsync().ConfigureAwait(false);
        }

        await _dataSource.DisposeAsync().ConfigureAwait(false);
        if (stopped)
        {
            _stop.Dispose(); // otherwise the listener may still look at its token; the finalizer-free source can be left
        }
    }

    // ---- transactions ----

    public async ValueTask BeginAsync()
    {
        if (_write is null || (_write.FullState & System.Data.ConnectionState.Open) == 0 || (_write.FullState & System.Data.ConnectionState.Broken) != 0)
        {
            // The last batch lost its connection: the next one starts on a new connection.
            if (_write is not null)
            {
                await _write.DisposeAsync().ConfigureAwait(false);
            }

            _write = null;
            _write = await _dataSource.OpenConnectionAsync().ConfigureAwait(false);
        }

        _pending.Clear();
        _savepoints.Clear();
        _pending.Add("BEGIN");
        _inTransaction = true;
        _sentInTransaction = false;
        _signal = 0;
    }

    /// <summary>Never: the caller's thread would wait on the network. The loop commits every batch.</summary>
    public bool TryBeginNow() => false;

    public async ValueTask CommitAsync()
    {
        if (_signal != 0)
        {
            // Delivered by PostgreSQL at commit, and not at all on a rollback.
            _pending.Add(_signal == 2 ? _notifySchedule : _notifyRuns);
            _signal = 0;
        }

        if (!_sentInTransaction && _pending.Count <= 1)
        {
            _pending.Clear(); // nothing was read or written: there is no transaction to end
        }
        else
        {
            _pending.Add("COMMIT");
            using var batch = Batch();
            await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        _inTransaction = false;
    }

    public async ValueTask RollbackAsync()
    {
        var sent = _sentInTransaction;
        _pending.Clear();
        _signal = 0;
        if (!_inTransaction)
        {
            return;
        }

        _inTransaction = false;
        if (sent && _write is { State: System.Data.ConnectionState.Open })
        {
            try
            {
                using var rollback = new NpgsqlCommand("ROLLBACK", _write);
                await rollback.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                PostgreSqlLog.RollbackFailed(_logger, e, Path);
                // The connection is gone, or in a state no one can vouch for: the next batch starts on a new one, so it
                // can never run inside what is left of this transaction.
                await _write.DisposeAsync().ConfigureAwait(false);
                _write = null;
            }
        }
    }

    /// <remarks>
    /// Each savepoint gets a name of its own in the database: if one were ever lost on its way (a batch that failed
    /// before it was sent), rolling back to it fails the batch instead of undoing an earlier op under the same name.
    /// </remarks>
    public ValueTask SavepointAsync(string name)
    {
        var actual = string.Create(CultureInfo.InvariantCulture, $"{name}_{++_savepointSeq}");
        _savepoints[name] = actual;
        _pending.Add("SAVEPOINT " + actual);
        return ValueTask.CompletedTask;
    }

    public ValueTask ReleaseAsync(string name)
    {
        var actual = _savepoints.Remove(name, out var a) ? a : name;
        if (!DropUnsent("SAVEPOINT " + actual))
        {
            _pending.Add("RELEASE SAVEPOINT " + actual);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask RollbackToAsync(string name)
    {
        var actual = _savepoints.Remove(name, out var a) ? a : name;
        if (!DropUnsent("SAVEPOINT " + actual))
        {
            _pending.Add("ROLLBACK TO SAVEPOINT " + actual);
            _pending.Add("RELEASE SAVEPOINT " + actual);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>A savepoint not sent yet had nothing written after it: forgetting it is all there is to do.</summary>
    private bool DropUnsent(string savepoint)
    {
        var at = _pending.LastIndexOf(savepoint);
        if (at < 0)
        {
            return false;
        }

        _pending.RemoveRange(at, _pending.Count - at);
        return true;
    }

    public bool IsStoreFailure(Exception e) => e switch
    {
        // Connection lost, admin shutdown, out of disk or memory: not the op's fault.
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("53", StringComparison.Ordinal)
            || p.SqlState.StartsWith("57", StringComparison.Ordinal) || p.SqlState.StartsWith("58", StringComparison.Ordinal),
        NpgsqlException => true,
        IOException or TimeoutException => true,
        _ => false,
    };

    public void SignalWrites(bool reconcile) => _signal = Math.Max(_signal, reconcile ? 2 : 1);

    public async ValueTask<IReadOnlyList<Guid>> MaintainAsync(long now)
    {
        using var batch = Batch(
            // Rows another transaction holds (a cancel on another node) are skipped, not waited for: no deadlock, and
            // they are renewed at the next round if they still run here.
            Cmd($"UPDATE {_s}.work SET lease_until = clock_timestamp() + $2 WHERE seq IN (SELECT seq FROM {_s}.work WHERE state = 1 AND owner = $1 ORDER BY seq FOR UPDATE SKIP LOCKED)", _node, _lease),
            Cmd($"UPDATE {_s}.work SET state = 0, owner = NULL, lease_until = NULL, stop_reason = {(int)StopReason.ProcessDied}, progress = NULL, " +
                "last_enqueue_time = $2, next_run_at = $2 " +
                $"WHERE seq IN (SELECT seq FROM {_s}.work WHERE state = 1 AND lease_until < clock_timestamp() AND owner <> $1 FOR UPDATE SKIP LOCKED) " +
                "RETURNING id, owner", _node, now));
        var taken = await ReadGuidsAsync(batch).ConfigureAwait(false);

        if (taken.Count > 0)
        {
            PostgreSqlLog.TookOver(_logger, taken.Count, _node);
        }

        return taken;
    }
}
