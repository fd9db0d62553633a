using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Converge.PostgreSql;
using Npgsql;
using NpgsqlTypes;

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
/// <see cref="Maintain"/>; a row whose lease ran out is enqueued again by whichever node looks first.
/// </para>
/// </remarks>
internal sealed class PostgreSqlWorkStore : IWorkStore
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

    /// <summary>Gets <see langword="true"/>: every call is a round trip to the server.</summary>
    public bool WaitsOnNetwork => true;

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

    public void Dispose()
    {
        _stop.Cancel();
        var stopped = false;
        try
        {
            stopped = _listener.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            stopped = true; // the listener logs its own failures
        }

        _write?.Dispose();
        _nameLock?.Dispose();
        _dataSource.Dispose();
        if (stopped)
        {
            _stop.Dispose(); // otherwise the listener may still look at its token; the finalizer-free source can be left
        }
    }

    // ---- transactions ----

    public void Begin()
    {
        if (_write is null || (_write.FullState & System.Data.ConnectionState.Open) == 0 || (_write.FullState & System.Data.ConnectionState.Broken) != 0)
        {
            // The last batch lost its connection: the next one starts on a new connection.
            _write?.Dispose();
            _write = null;
            _write = _dataSource.OpenConnection();
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

    public void Commit()
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
            batch.ExecuteNonQuery();
        }

        _inTransaction = false;
    }

    public void Rollback()
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
                rollback.ExecuteNonQuery();
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                PostgreSqlLog.RollbackFailed(_logger, e, Path);
                // The connection is gone, or in a state no one can vouch for: the next batch starts on a new one, so it
                // can never run inside what is left of this transaction.
                _write.Dispose();
                _write = null;
            }
        }
    }

    /// <remarks>
    /// Each savepoint gets a name of its own in the database: if one were ever lost on its way (a batch that failed
    /// before it was sent), rolling back to it fails the batch instead of undoing an earlier op under the same name.
    /// </remarks>
    public void Savepoint(string name)
    {
        var actual = string.Create(CultureInfo.InvariantCulture, $"{name}_{++_savepointSeq}");
        _savepoints[name] = actual;
        _pending.Add("SAVEPOINT " + actual);
    }

    public void Release(string name)
    {
        var actual = _savepoints.Remove(name, out var a) ? a : name;
        if (!DropUnsent("SAVEPOINT " + actual))
        {
            _pending.Add("RELEASE SAVEPOINT " + actual);
        }
    }

    public void RollbackTo(string name)
    {
        var actual = _savepoints.Remove(name, out var a) ? a : name;
        if (!DropUnsent("SAVEPOINT " + actual))
        {
            _pending.Add("ROLLBACK TO SAVEPOINT " + actual);
            _pending.Add("RELEASE SAVEPOINT " + actual);
        }
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

    public IReadOnlyList<Guid> Maintain(long now)
    {
        using var batch = Batch(
            // Rows another transaction holds (a cancel on another node) are skipped, not waited for: no deadlock, and
            // they are renewed at the next round if they still run here.
            Cmd($"UPDATE {_s}.work SET lease_until = clock_timestamp() + $2 WHERE seq IN (SELECT seq FROM {_s}.work WHERE state = 1 AND owner = $1 ORDER BY seq FOR UPDATE SKIP LOCKED)", _node, _lease),
            Cmd($"UPDATE {_s}.work SET state = 0, owner = NULL, lease_until = NULL, stop_reason = {(int)StopReason.ProcessDied}, progress = NULL, " +
                "last_enqueue_time = $2, next_run_at = $2 " +
                $"WHERE seq IN (SELECT seq FROM {_s}.work WHERE state = 1 AND lease_until < clock_timestamp() AND owner <> $1 FOR UPDATE SKIP LOCKED) " +
                "RETURNING id, owner", _node, now));
        var taken = new List<Guid>();
        using var r = batch.ExecuteReader();
        while (r.Read())
        {
            taken.Add(r.GetGuid(0));
        }

        if (taken.Count > 0)
        {
            PostgreSqlLog.TookOver(_logger, taken.Count, _node);
        }

        return taken;
    }

    // ---- writes ----

    public void Insert(WorkRow row, IReadOnlyCollection<Guid> prerequisites)
    {
        row.HasPrerequisites = prerequisites.Count > 0;
        var commands = new List<NpgsqlBatchCommand>(4)
        {
            Cmd($"INSERT INTO {_s}.work (id, worker_name, state, input, output, progress, tags, unique_name, input_merger, requires, " +
                "initial_delay_ms, interval_ms, flex_ms, backoff_policy, backoff_delay_ms, expedited, out_of_quota, last_enqueue_time, " +
                "run_attempt_count, period_count, generation, stop_reason, failure_reason, next_run_at, override_constraints, " +
                "has_prerequisites, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, " +
                "$16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, CASE WHEN $3 IN (2, 3, 5) THEN $28 END) RETURNING seq", RowValues(row)),
        };
        var tags = row.Tags.Where(t => t != row.WorkerName).ToArray(); // the worker-name tag is matched through worker_name
        if (tags.Length > 0)
        {
            commands.Add(Cmd($"INSERT INTO {_s}.work_tag (tag, work_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING", tags, row.Id));
        }

        if (row.UniqueName is not null)
        {
            commands.Add(Cmd($"INSERT INTO {_s}.work_name (name, work_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", row.UniqueName, row.Id));
        }

        if (prerequisites.Count > 0)
        {
            var pre = prerequisites.ToArray();
            commands.Add(Cmd($"INSERT INTO {_s}.dependency (work_id, prerequisite_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING", row.Id, pre));
            commands.Add(Cmd($"UPDATE {_s}.work SET has_dependents = true WHERE id = ANY($1)", pre));
        }

        try
        {
            using var batch = Batch([.. commands]);
            row.Seq = (long)batch.ExecuteScalar()!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "work_id_key")
        {
            throw new InvalidOperationException($"Work {row.Id} already exists; every request needs its own id.", e);
        }
    }

    public void Update(WorkRow row)
    {
        // A row that leaves RUNNING leaves its node too.
        using var batch = Batch(Cmd(
            $"UPDATE {_s}.work SET id = $1, worker_name = $2, state = $3, input = $4, output = $5, progress = $6, tags = $7, unique_name = $8, " +
            "input_merger = $9, requires = $10, initial_delay_ms = $11, interval_ms = $12, flex_ms = $13, backoff_policy = $14, " +
            "backoff_delay_ms = $15, expedited = $16, out_of_quota = $17, last_enqueue_time = $18, run_attempt_count = $19, " +
            "period_count = $20, generation = $21, stop_reason = $22, failure_reason = $23, next_run_at = $24, override_constraints = $25, " +
            "has_prerequisites = $26, created_at = $27, finished_at = CASE WHEN $3 IN (2, 3, 5) THEN coalesce(finished_at, $28) END, " +
            "owner = CASE WHEN $3 = 1 THEN owner END, lease_until = CASE WHEN $3 = 1 THEN lease_until END " +
            // A row read as this node's run is written back only while it still is: a reconcile that read it just before
            // another node took it over must not undo the takeover.
            "WHERE id = $1 AND (NOT $29 OR (state = 1 AND owner = $30))",
            [.. RowValues(row), row.ReadAsOwnRun, _node]));
        batch.ExecuteNonQuery();
    }

    public void ReplaceTags(WorkRow row)
    {
        var tags = row.Tags.Where(t => t != row.WorkerName).ToArray();
        using var batch = Batch(
            Cmd($"DELETE FROM {_s}.work_tag WHERE work_id = $1", row.Id),
            Cmd($"INSERT INTO {_s}.work_tag (tag, work_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING", tags, row.Id));
        batch.ExecuteNonQuery();
    }

    public bool[] MarkRunning(IReadOnlyList<WorkRow> rows)
    {
        // One statement for all. A row in another node's claim (or its due query, or a cancel) right now is skipped, not
        // waited for, so two nodes claiming the same rows can never deadlock; the engine then reads afresh.
        var seqs = new long[rows.Count];
        var attempts = new int[rows.Count];
        var generations = new int[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            (seqs[i], attempts[i], generations[i]) = (rows[i].Seq, rows[i].RunAttemptCount, rows[i].Generation);
        }

        using var batch = Batch(Cmd(
            $"WITH c AS (SELECT w.seq, m.attempts FROM {_s}.work w JOIN unnest($1::bigint[], $2::int[], $3::int[]) AS m(seq, attempts, generation) ON w.seq = m.seq " +
            "WHERE w.state = 0 AND w.run_attempt_count = m.attempts - 1 AND w.generation = m.generation FOR UPDATE OF w SKIP LOCKED) " +
            $"UPDATE {_s}.work w SET state = 1, run_attempt_count = c.attempts, stop_reason = 0, progress = NULL, owner = $4, lease_until = clock_timestamp() + $5 " +
            "FROM c WHERE w.seq = c.seq RETURNING w.seq",
            seqs, attempts, generations, _node, _lease));
        var marked = new HashSet<long>();
        using (var r = batch.ExecuteReader())
        {
            while (r.Read())
            {
                marked.Add(r.GetInt64(0));
            }
        }

        return Array.ConvertAll(seqs, marked.Contains);
    }

    public IReadOnlySet<Guid> FinishOneTimeWithoutDependents(IReadOnlyList<OneTimeFinish> finishes)
    {
        var ids = new Guid[finishes.Count];
        var states = new short[finishes.Count];
        var outputs = new string[finishes.Count];
        var failures = new string?[finishes.Count];
        for (var i = 0; i < finishes.Count; i++)
        {
            (ids[i], states[i], outputs[i], failures[i]) = (finishes[i].Id, (short)finishes[i].State, finishes[i].OutputJson, Text(finishes[i].FailureReason));
        }

        // "state + 0": with "state = 1" the planner may scan a partial index of the running rows instead of looking the
        // ids up, as its statistics (taken when nothing ran) say it is empty; it is not, and holds the finished rows'
        // dead entries too.
        using var batch = Batch(Cmd(
            $"UPDATE {_s}.work w SET state = f.state, output = f.output, progress = NULL, stop_reason = 0, override_constraints = false, " +
            "failure_reason = f.failure, finished_at = $5, owner = NULL, lease_until = NULL " +
            "FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[]) AS f(id, state, output, failure) " +
            "WHERE w.id = f.id AND w.state + 0 = 1 AND w.owner = $6 AND NOT w.has_dependents RETURNING w.id",
            ids, states, outputs, failures, BatchTime, _node));
        return ReadGuids(batch).ToHashSet();
    }

    public bool? FinishOneTime(Guid id, WorkState state, string outputJson, string? failureReason)
    {
        using var batch = Batch(Cmd(
            $"UPDATE {_s}.work SET state = $2, output = $3, progress = NULL, stop_reason = 0, override_constraints = false, failure_reason = $4, " +
            "finished_at = $5, owner = NULL, lease_until = NULL WHERE id = $1 AND state = 1 AND owner = $6 RETURNING has_dependents",
            id, (short)state, outputJson, Text(failureReason), BatchTime, _node));
        return batch.ExecuteScalar() is bool dependents ? dependents : null;
    }

    public List<Guid> Prune(long finishedBefore)
    {
        using var batch = Batch(Cmd(
            $"WITH p AS (SELECT id FROM {_s}.work w WHERE state IN (2, 3, 5) AND finished_at <= $1 AND NOT EXISTS " +
            $"(SELECT 1 FROM {_s}.dependency d JOIN {_s}.work x ON x.id = d.work_id WHERE d.prerequisite_id = w.id AND x.state NOT IN (2, 3, 5)) " +
            "FOR UPDATE SKIP LOCKED), " +
            $"t AS (DELETE FROM {_s}.work_tag WHERE work_id IN (SELECT id FROM p)), " +
            $"n AS (DELETE FROM {_s}.work_name WHERE work_id IN (SELECT id FROM p)), " +
            $"d AS (DELETE FROM {_s}.dependency WHERE work_id IN (SELECT id FROM p) OR prerequisite_id IN (SELECT id FROM p)) " +
            $"DELETE FROM {_s}.work WHERE id IN (SELECT id FROM p) RETURNING id",
            finishedBefore));
        return ReadGuids(batch);
    }

    public void SetProgress(Guid id, string? progressJson)
    {
        using var batch = Batch(Cmd($"UPDATE {_s}.work SET progress = $2 WHERE id = $1 AND owner = $3", id, progressJson, _node));
        batch.ExecuteNonQuery();
    }

    public void Delete(Guid id)
    {
        using var batch = Batch(
            Cmd($"DELETE FROM {_s}.work_tag WHERE work_id = $1", id),
            Cmd($"DELETE FROM {_s}.work_name WHERE work_id = $1", id),
            Cmd($"DELETE FROM {_s}.dependency WHERE work_id = $1 OR prerequisite_id = $1", id),
            Cmd($"DELETE FROM {_s}.work WHERE id = $1", id));
        batch.ExecuteNonQuery();
    }

    // ---- reads in the write transaction ----

    public WorkRow? Get(Guid id)
    {
        // Locked until the batch ends: what the engine decides from the row still holds when it writes it back.
        using var batch = Batch(Cmd($"SELECT {Columns} FROM {_s}.work WHERE id = $1 FOR NO KEY UPDATE", id));
        var rows = ReadRows(batch);
        return rows.Count > 0 ? rows[0] : null;
    }

    public List<WorkRow> GetByName(string name)
    {
        // Two nodes enqueueing the same unique name take turns, as writers of one SQLite file do.
        using var batch = Batch(
            Cmd("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _s + "/" + name),
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE id IN (SELECT work_id FROM {_s}.work_name WHERE name = $1) ORDER BY seq FOR NO KEY UPDATE", name));
        using var r = batch.ExecuteReader();
        r.NextResult(); // past the lock's result
        var rows = new List<WorkRow>();
        while (r.Read())
        {
            rows.Add(ReadRow(r));
        }

        return rows;
    }

    public List<Guid> Dependents(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT work_id FROM {_s}.dependency WHERE prerequisite_id = $1", id));
        return ReadGuids(batch);
    }

    public bool HasDependents(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT EXISTS (SELECT 1 FROM {_s}.dependency WHERE prerequisite_id = $1)", id));
        return (bool)batch.ExecuteScalar()!;
    }

    public List<WorkState> PrerequisiteStates(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT w.state FROM {_s}.dependency d JOIN {_s}.work w ON w.id = d.prerequisite_id WHERE d.work_id = $1", id));
        var result = new List<WorkState>();
        using var r = batch.ExecuteReader();
        while (r.Read())
        {
            result.Add((WorkState)r.GetInt16(0));
        }

        return result;
    }

    public List<string> PrerequisiteOutputs(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT w.output FROM {_s}.dependency d JOIN {_s}.work w ON w.id = d.prerequisite_id WHERE d.work_id = $1 ORDER BY w.seq", id));
        var result = new List<string>();
        using var r = batch.ExecuteReader();
        while (r.Read())
        {
            result.Add(r.GetString(0));
        }

        return result;
    }

    public List<WorkRow> Due<TRunning>(long now, ConstraintBits unmet, int limit, IReadOnlyDictionary<Guid, TRunning> running, IReadOnlyCollection<string>? workers)
    {
        // Expedited first, each an index range scan with a plain limit (a plan that stops early, whatever the cached
        // plan), both in one round trip. The statements lock what they return until the claim commits, and other nodes
        // skip locked rows rather than wait for them. Only when both kinds are due can more rows be locked than claimed,
        // for the few milliseconds of the claim. A node claims only work it has a worker for, and leaves the rest to
        // nodes that do.
        const string Where = "state = 0 AND next_run_at <= $1 AND ((requires & $2) = 0 OR override_constraints) AND ($4::text[] IS NULL OR worker_name = ANY($4)) " +
            "ORDER BY next_run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED";
        var names = workers is null
            ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text }
            : new NpgsqlParameter { Value = workers.ToArray() };
        using var batch = Batch(
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE expedited AND {Where}", now, (long)unmet, limit, names),
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE NOT expedited AND {Where}", now, (long)unmet, limit, names.Clone()));
        var rows = new List<WorkRow>();
        using (var r = batch.ExecuteReader())
        {
            do
            {
                while (r.Read())
                {
                    rows.Add(ReadRow(r));
                }
            }
            while (r.NextResult());
        }

        rows.RemoveAll(r => running.ContainsKey(r.Id));
        if (rows.Count > limit)
        {
            rows.RemoveRange(limit, rows.Count - limit);
        }

        return rows;
    }

    public long? NextDue(long now, ConstraintBits unmet)
    {
        const string Where = "state = 0 AND next_run_at > $1 AND ((requires & $2) = 0 OR override_constraints) ORDER BY next_run_at LIMIT 1";
        using var batch = Batch(Cmd(
            $"SELECT least((SELECT next_run_at FROM {_s}.work WHERE expedited AND {Where}), (SELECT next_run_at FROM {_s}.work WHERE NOT expedited AND {Where}))",
            now, (long)unmet));
        return batch.ExecuteScalar() is long next ? next : null;
    }

    public List<WorkRow> Running()
    {
        using var batch = Batch(Cmd($"SELECT {Columns} FROM {_s}.work WHERE state = 1 AND owner = $1", _node));
        return ReadRows(batch);
    }

    public List<WorkRow> SelectForWrite(WorkQuery query)
    {
        using var batch = Batch(BuildQuery(query));
        return ReadRows(batch);
    }

    // ---- queries on pooled connections ----

    public List<WorkInfo> Query(WorkQuery query)
    {
        using var connection = _dataSource.OpenConnection();
        using var batch = new NpgsqlBatch(connection);
        batch.BatchCommands.Add(BuildQuery(query));
        return ReadRows(batch).ConvertAll(r => r.ToInfo());
    }

    private NpgsqlBatchCommand BuildQuery(WorkQuery query)
    {
        var sql = new StringBuilder($"SELECT {Columns} FROM {_s}.work WHERE true");
        var values = new List<object?>();
        if (query.Ids.Count > 0)
        {
            values.Add(query.Ids.ToArray());
            sql.Append(CultureInfo.InvariantCulture, $" AND id = ANY(${values.Count})");
        }

        if (query.UniqueNames.Count > 0)
        {
            values.Add(query.UniqueNames.ToArray());
            sql.Append(CultureInfo.InvariantCulture, $" AND id IN (SELECT work_id FROM {_s}.work_name WHERE name = ANY(${values.Count}))");
        }

        if (query.Tags.Count > 0)
        {
            values.Add(query.Tags.ToArray());
            sql.Append(CultureInfo.InvariantCulture, $" AND (worker_name = ANY(${values.Count}) OR id IN (SELECT work_id FROM {_s}.work_tag WHERE tag = ANY(${values.Count})))");
        }

        if (query.States.Count > 0)
        {
            values.Add(query.States.Select(s => (short)s).ToArray());
            sql.Append(CultureInfo.InvariantCulture, $" AND state = ANY(${values.Count})");
        }

        sql.Append(" ORDER BY seq");
        return Cmd(sql.ToString(), [.. values]);
    }

    // ---- plumbing ----

    /// <summary>A batch on the write connection: the queued transaction control first, then the commands.</summary>
    private NpgsqlBatch Batch(params NpgsqlBatchCommand[] commands)
    {
        var connection = _write ?? throw new InvalidOperationException("The work store's connection was lost; the next batch opens a new one.");
        var batch = new NpgsqlBatch(connection);
        foreach (var sql in _pending)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(sql));
        }

        _pending.Clear();
        foreach (var command in commands)
        {
            batch.BatchCommands.Add(command);
        }

        _sentInTransaction |= _inTransaction;
        return batch;
    }

    private static NpgsqlBatchCommand Cmd(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(value switch
            {
                NpgsqlParameter given => given,
                null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                _ => new NpgsqlParameter { Value = value },
            });
        }

        return command;
    }

    /// <summary>PostgreSQL's text cannot hold NUL; a failure reason made from an exception message might.</summary>
    private static string? Text(string? value) => value?.Replace('\0', '\uFFFD');

    private object?[] RowValues(WorkRow row) =>
    [
        row.Id, row.WorkerName, (short)row.State, row.InputJson, row.OutputJson, row.ProgressJson, row.TagsJson, row.UniqueName,
        row.InputMerger, (long)row.Constraints.Required(), (long)row.InitialDelay.TotalMilliseconds, (long)row.Interval.TotalMilliseconds,
        (long)row.Flex.TotalMilliseconds, (int)row.BackoffPolicy, (long)row.BackoffDelay.TotalMilliseconds, row.Expedited,
        (int)row.OutOfQuotaPolicy, row.LastEnqueueTime, row.RunAttemptCount, row.PeriodCount, row.Generation, (int)row.StopReason,
        Text(row.FailureReason), row.NextRunAt, row.OverrideConstraints, row.HasPrerequisites, row.CreatedAt, BatchTime,
    ];

    private List<WorkRow> ReadRows(NpgsqlBatch batch)
    {
        var rows = new List<WorkRow>();
        using var r = batch.ExecuteReader();
        while (r.Read())
        {
            rows.Add(ReadRow(r));
        }

        return rows;
    }

    private static List<Guid> ReadGuids(NpgsqlBatch batch)
    {
        var ids = new List<Guid>();
        using var r = batch.ExecuteReader();
        while (r.Read())
        {
            ids.Add(r.GetGuid(0));
        }

        return ids;
    }

    private WorkRow ReadRow(NpgsqlDataReader r)
    {
        var row = WorkRow.Read(r);
        if (row.State == WorkState.Running)
        {
            var mine = !r.IsDBNull(29) && r.GetString(29).Equals(_node, StringComparison.Ordinal);
            row.RunningElsewhere = !mine;
            row.ReadAsOwnRun = mine;
        }

        return row;
    }

    // ---- schema ----

    private void Migrate()
    {
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        Execute(connection, $"SELECT pg_advisory_xact_lock({MigrationLockKey})");
        Execute(connection, $"CREATE SCHEMA IF NOT EXISTS {_s}; CREATE TABLE IF NOT EXISTS {_s}.schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
        int found;
        using (var read = new NpgsqlCommand($"SELECT coalesce(max(version), 0) FROM {_s}.schema_version", connection))
        {
            found = (int)read.ExecuteScalar()!;
        }

        if (found > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"The Converge.Work store in schema {_s} has schema version {found}, newer than this Converge.Work ({SchemaVersion}). Upgrade Converge.Work.");
        }

        for (var version = found + 1; version <= SchemaVersion; version++)
        {
            Execute(connection, Migrations(version));
            Execute(connection, $"INSERT INTO {_s}.schema_version (version) VALUES ({version})");
        }

        transaction.Commit();
        if (found < SchemaVersion)
        {
            PostgreSqlLog.SchemaMigrated(_logger, Path, found, SchemaVersion);
        }
    }

    private string Migrations(int version) => version switch
    {
        1 => $"""
            CREATE TABLE {_s}.work (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id uuid NOT NULL CONSTRAINT work_id_key UNIQUE,
                worker_name text NOT NULL,
                state smallint NOT NULL,
                input text NOT NULL,
                output text NOT NULL DEFAULT '{"{}"}',
                progress text,
                tags text NOT NULL,
                unique_name text,
                input_merger text NOT NULL,
                requires bigint NOT NULL,
                initial_delay_ms bigint NOT NULL,
                interval_ms bigint NOT NULL,
                flex_ms bigint NOT NULL,
                backoff_policy int NOT NULL,
                backoff_delay_ms bigint NOT NULL,
                expedited boolean NOT NULL,
                out_of_quota int NOT NULL,
                last_enqueue_time bigint NOT NULL,
                run_attempt_count int NOT NULL,
                period_count int NOT NULL,
                generation int NOT NULL,
                stop_reason int NOT NULL,
                failure_reason text,
                next_run_at bigint NOT NULL,
                override_constraints boolean NOT NULL,
                has_prerequisites boolean NOT NULL,
                created_at bigint NOT NULL,
                finished_at bigint,
                has_dependents boolean NOT NULL DEFAULT false,
                owner text,
                lease_until timestamptz);
            CREATE INDEX work_due ON {_s}.work (expedited, next_run_at, seq) WHERE state = 0;
            CREATE INDEX work_running ON {_s}.work (owner) WHERE state = 1;
            CREATE INDEX work_lease ON {_s}.work (lease_until) WHERE state = 1;
            CREATE INDEX work_finished ON {_s}.work (finished_at) WHERE state IN (2, 3, 5);
            CREATE TABLE {_s}.work_tag (tag text NOT NULL, work_id uuid NOT NULL, PRIMARY KEY (tag, work_id));
            CREATE INDEX work_tag_work ON {_s}.work_tag (work_id);
            CREATE TABLE {_s}.work_name (name text NOT NULL, work_id uuid NOT NULL, PRIMARY KEY (name, work_id));
            CREATE INDEX work_name_work ON {_s}.work_name (work_id);
            CREATE TABLE {_s}.dependency (work_id uuid NOT NULL, prerequisite_id uuid NOT NULL, PRIMARY KEY (work_id, prerequisite_id));
            CREATE INDEX dependency_prerequisite ON {_s}.dependency (prerequisite_id);
            """,
        _ => throw new ArgumentOutOfRangeException(nameof(version)),
    };

    private static void Execute(NpgsqlConnection connection, string sql)
    {
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    // ---- wake-ups ----

    /// <summary>Listens for other nodes' commits; after a gap, assumes something was missed.</summary>
    private Task ListenAsync(CancellationToken cancellationToken) => PostgresListener.RunAsync(
        _dataSource,
        _channel,
        payload =>
        {
            var bar = payload.LastIndexOf('|');
            if (bar > 0 && !payload.AsSpan(0, bar).SequenceEqual(_node))
            {
                _onWake(payload.EndsWith("|r", StringComparison.Ordinal));
            }
        },
        afterLoss =>
        {
            if (afterLoss)
            {
                _onWake(true);
            }
        },
        (e, delay) => PostgreSqlLog.ListenFailed(_logger, e, Path, delay),
        cancellationToken);
}
