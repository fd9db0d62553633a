using System.Globalization;
using System.Text;
using Converge.Sqlite;
using Microsoft.Data.Sqlite;

namespace Converge.Work;

/// <summary>
/// The SQLite work store. One write connection, used only by the engine's loop, plus pooled read connections for queries.
/// </summary>
internal sealed class SqliteWorkStore : IWorkStore
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

    /// <summary>Gets <see langword="false"/>: a local file.</summary>
    public bool WaitsOnNetwork => false;

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
            store.Dispose();
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

    public void Dispose()
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
    public void Begin()
    {
        Command("begin", "BEGIN IMMEDIATE;").ExecuteNonQuery();
        _inTransaction = true;
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

    public void Commit()
    {
        Command("commit", "COMMIT;").ExecuteNonQuery();
        _inTransaction = false;
        _checkpointer.Committed();
        if (_signalAfterCommit)
        {
            _signalAfterCommit = false;
            _wake?.Signal();
        }
    }

    public void Rollback()
    {
        _signalAfterCommit = false;
        if (!_inTransaction)
        {
            return;
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
    public IReadOnlyList<Guid> Maintain(long now) => [];

    public void Savepoint(string name) => Command("savepoint_" + name, $"SAVEPOINT {name};").ExecuteNonQuery();

    public void Release(string name) => Command("release_" + name, $"RELEASE {name};").ExecuteNonQuery();

    public void RollbackTo(string name)
    {
        Run($"ROLLBACK TO {name};");
        Run($"RELEASE {name};");
    }

    // ---- writes ----

    public void Insert(WorkRow row, IReadOnlyCollection<Guid> prerequisites)
    {
        row.HasPrerequisites = prerequisites.Count > 0;
        var cmd = Command("insert",
            $"INSERT INTO work ({Columns[5..^16]}, finished_at) VALUES ($id, $worker_name, $state, $input, $output, $progress, $tags, $unique_name, " +
            "$input_merger, $requires, $initial_delay_ms, $interval_ms, $flex_ms, $backoff_policy, $backoff_delay_ms, $expedited, " +
            "$out_of_quota, $last_enqueue_time, $run_attempt_count, $period_count, $generation, $stop_reason, $failure_reason, " +
            "$next_run_at, $override_constraints, $has_prerequisites, $created_at, " +
            "CASE WHEN $state IN (2,3,5) THEN $batch_time END);");
        Bind(cmd, row);
        try
        {
            cmd.ExecuteNonQuery();
            // The rowid straight from the connection: a RETURNING clause would open a reader for every enqueue.
            row.Seq = SQLitePCL.raw.sqlite3_last_insert_rowid(_write.Handle);
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 19)
        {
            throw new InvalidOperationException($"Work {row.Id} already exists; every request needs its own id.", e);
        }

        var tag = Command("insert_tag", "INSERT OR IGNORE INTO work_tag (tag, work_id) VALUES ($tag, $id);");
        foreach (var t in row.Tags)
        {
            if (t == row.WorkerName)
            {
                continue; // the worker-name tag is matched through the worker_name column
            }

            tag.Parameters["$tag"].Value = t;
            tag.Parameters["$id"].Value = row.Id;
            tag.ExecuteNonQuery();
        }

        if (row.UniqueName is not null)
        {
            var name = Command("insert_name", "INSERT OR IGNORE INTO work_name (name, work_id) VALUES ($name, $id);");
            name.Parameters["$name"].Value = row.UniqueName;
            name.Parameters["$id"].Value = row.Id;
            name.ExecuteNonQuery();
        }

        var dep = Command("insert_dep", "INSERT OR IGNORE INTO dependency (work_id, prerequisite_id) VALUES ($id, $pre);");
        var mark = Command("mark_dependents", "UPDATE work SET has_dependents=1 WHERE id=$pre;");
        foreach (var p in prerequisites)
        {
            dep.Parameters["$id"].Value = row.Id;
            dep.Parameters["$pre"].Value = p;
            dep.ExecuteNonQuery();
            mark.Parameters["$pre"].Value = p;
            mark.ExecuteNonQuery();
        }
    }

    public void Update(WorkRow row)
    {
        var cmd = Command("update",
            "UPDATE work SET worker_name=$worker_name, state=$state, input=$input, output=$output, progress=$progress, tags=$tags, " +
            "unique_name=$unique_name, input_merger=$input_merger, requires=$requires, initial_delay_ms=$initial_delay_ms, " +
            "interval_ms=$interval_ms, flex_ms=$flex_ms, backoff_policy=$backoff_policy, backoff_delay_ms=$backoff_delay_ms, " +
            "expedited=$expedited, out_of_quota=$out_of_quota, last_enqueue_time=$last_enqueue_time, " +
            "run_attempt_count=$run_attempt_count, period_count=$period_count, generation=$generation, stop_reason=$stop_reason, " +
            "failure_reason=$failure_reason, next_run_at=$next_run_at, override_constraints=$override_constraints, " +
            "has_prerequisites=$has_prerequisites, created_at=$created_at, " +
            "finished_at=CASE WHEN $state IN (2,3,5) THEN COALESCE(finished_at, $batch_time) END WHERE id=$id;");
        Bind(cmd, row);
        cmd.ExecuteNonQuery();
    }

    public void ReplaceTags(WorkRow row)
    {
        Run("DELETE FROM work_tag WHERE work_id=$id;", ("$id", row.Id));
        var tag = Command("insert_tag", "INSERT OR IGNORE INTO work_tag (tag, work_id) VALUES ($tag, $id);");
        foreach (var t in row.Tags)
        {
            if (t == row.WorkerName)
            {
                continue; // the worker-name tag is matched through the worker_name column
            }

            tag.Parameters["$tag"].Value = t;
            tag.Parameters["$id"].Value = row.Id;
            tag.ExecuteNonQuery();
        }
    }

    /// <summary>The claim: only what a start changes, by primary key.</summary>
    /// <returns>Whether the row was still enqueued with the attempt count read, and so is now running.</returns>
    public bool[] MarkRunning(IReadOnlyList<WorkRow> rows)
    {
        var cmd = Command("mark_running",
            "UPDATE work SET state=1, run_attempt_count=$attempts, stop_reason=0, progress=NULL " +
            "WHERE seq=$seq AND state=0 AND run_attempt_count=$attempts - 1 AND generation=$generation;");
        var claimed = new bool[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            cmd.Parameters["$attempts"].Value = rows[i].RunAttemptCount;
            cmd.Parameters["$seq"].Value = rows[i].Seq;
            cmd.Parameters["$generation"].Value = rows[i].Generation;
            claimed[i] = cmd.ExecuteNonQuery() == 1;
        }

        return claimed;
    }

    /// <summary>Finishes a running one-time work with one narrow update.</summary>
    /// <returns>Whether other work depends on it, or <see langword="null"/> when it was no longer running.</returns>
    public bool? FinishOneTime(Guid id, WorkState state, string outputJson, string? failureReason)
    {
        var cmd = Command("finish_one_time",
            "UPDATE work SET state=$state, output=$output, progress=NULL, stop_reason=0, override_constraints=0, " +
            "failure_reason=$failure, finished_at=$batch_time WHERE id=$id AND state=1 RETURNING has_dependents;");
        cmd.Parameters["$state"].Value = (int)state;
        cmd.Parameters["$output"].Value = outputJson;
        cmd.Parameters["$failure"].Value = (object?)failureReason ?? DBNull.Value;
        cmd.Parameters["$batch_time"].Value = BatchTime;
        cmd.Parameters["$id"].Value = id;
        return cmd.ExecuteScalar() is long dependents ? dependents != 0 : null;
    }

    public IReadOnlySet<Guid> FinishOneTimeWithoutDependents(IReadOnlyList<OneTimeFinish> finishes)
    {
        var cmd = Command("finish_one_time_alone",
            "UPDATE work SET state=$state, output=$output, progress=NULL, stop_reason=0, override_constraints=0, " +
            "failure_reason=$failure, finished_at=$batch_time WHERE id=$id AND state=1 AND has_dependents=0;");
        var finished = new HashSet<Guid>();
        foreach (var finish in finishes)
        {
            cmd.Parameters["$state"].Value = (int)finish.State;
            cmd.Parameters["$output"].Value = finish.OutputJson;
            cmd.Parameters["$failure"].Value = (object?)finish.FailureReason ?? DBNull.Value;
            cmd.Parameters["$batch_time"].Value = BatchTime;
            cmd.Parameters["$id"].Value = finish.Id;
            if (cmd.ExecuteNonQuery() == 1)
            {
                finished.Add(finish.Id);
            }
        }

        return finished;
    }

    /// <summary>Deletes finished work that finished at or before <paramref name="finishedBefore"/> and that no unfinished work depends on.</summary>
    /// <returns>The ids deleted.</returns>
    public List<Guid> Prune(long finishedBefore)
    {
        Run("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id BLOB PRIMARY KEY) WITHOUT ROWID;");
        Run("DELETE FROM prune_ids;");
        Run("INSERT INTO prune_ids SELECT id FROM work WHERE state IN (2,3,5) AND finished_at <= $cutoff AND NOT EXISTS " +
            "(SELECT 1 FROM dependency d JOIN work w ON w.id = d.work_id WHERE d.prerequisite_id = work.id AND w.state NOT IN (2,3,5));",
            ("$cutoff", finishedBefore));
        using var select = _write.CreateCommand();
        select.CommandText = "SELECT id FROM prune_ids;";
        var ids = ReadGuids(select);
        if (ids.Count > 0)
        {
            Run("DELETE FROM work_tag WHERE work_id IN (SELECT id FROM prune_ids);");
            Run("DELETE FROM work_name WHERE work_id IN (SELECT id FROM prune_ids);");
            Run("DELETE FROM dependency WHERE work_id IN (SELECT id FROM prune_ids) OR prerequisite_id IN (SELECT id FROM prune_ids);");
            Run("DELETE FROM work WHERE id IN (SELECT id FROM prune_ids);");
        }

        Run("DELETE FROM prune_ids;");
        return ids;
    }

    public void SetProgress(Guid id, string? progressJson) =>
        Run("UPDATE work SET progress=$p WHERE id=$id;", ("$p", (object?)progressJson ?? DBNull.Value), ("$id", id));

    public void Delete(Guid id)
    {
        var key = id;
        Run("DELETE FROM work WHERE id=$id;", ("$id", key));
        Run("DELETE FROM work_tag WHERE work_id=$id;", ("$id", key));
        Run("DELETE FROM work_name WHERE work_id=$id;", ("$id", key));
        Run("DELETE FROM dependency WHERE work_id=$id OR prerequisite_id=$id;", ("$id", key));
    }

    // ---- reads inside the write transaction ----

    public WorkRow? Get(Guid id)
    {
        var cmd = Command("get", $"SELECT {Columns} FROM work WHERE id=$id;");
        cmd.Parameters["$id"].Value = id;
        using var r = cmd.ExecuteReader();
        return r.Read() ? WorkRow.Read(r) : null;
    }

    public List<WorkRow> GetByName(string name)
    {
        var cmd = Command("by_name", $"SELECT {Columns} FROM work WHERE id IN (SELECT work_id FROM work_name WHERE name=$name) ORDER BY seq;");
        cmd.Parameters["$name"].Value = name;
        return ReadRows(cmd);
    }

    public List<Guid> Dependents(Guid id)
    {
        var cmd = Command("dependents", "SELECT work_id FROM dependency WHERE prerequisite_id=$id;");
        cmd.Parameters["$id"].Value = id;
        return ReadGuids(cmd);
    }

    public bool HasDependents(Guid id)
    {
        var cmd = Command("has_dependents", "SELECT EXISTS (SELECT 1 FROM dependency WHERE prerequisite_id=$id);");
        cmd.Parameters["$id"].Value = id;
        return (long)cmd.ExecuteScalar()! != 0;
    }

    /// <summary>Prerequisite states, for the unblock check.</summary>
    public List<WorkState> PrerequisiteStates(Guid id)
    {
        var cmd = Command("pre_states", "SELECT w.state FROM dependency d JOIN work w ON w.id = d.prerequisite_id WHERE d.work_id=$id;");
        cmd.Parameters["$id"].Value = id;
        var result = new List<WorkState>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            result.Add((WorkState)r.GetInt32(0));
        }

        return result;
    }

    /// <summary>Outputs of a work's prerequisites, oldest prerequisite first.</summary>
    public List<string> PrerequisiteOutputs(Guid id)
    {
        var cmd = Command("pre_outputs", "SELECT w.output FROM dependency d JOIN work w ON w.id = d.prerequisite_id WHERE d.work_id=$id ORDER BY w.seq;");
        cmd.Parameters["$id"].Value = id;
        var result = new List<string>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            result.Add(r.GetString(0));
        }

        return result;
    }

    /// <summary>Enqueued works that are due and whose constraints hold, expedited first, then by due time and age.</summary>
    public List<WorkRow> Due<TRunning>(long now, ConstraintBits unmet, int limit, IReadOnlyDictionary<Guid, TRunning> running, IReadOnlyCollection<string>? workers)
    {
        // One index range scan per priority, expedited first, so not-yet-due work is never walked.
        var rows = new List<WorkRow>();
        foreach (var expedited in s_priorities)
        {
            var cmd = Command(expedited ? "due_expedited" : "due_normal",
                $"SELECT {Columns} FROM work WHERE state=0 AND expedited={(expedited ? 1 : 0)} AND next_run_at<=$now " +
                "AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at, seq LIMIT $limit;");
            cmd.Parameters["$now"].Value = now;
            cmd.Parameters["$unmet"].Value = (long)unmet;
            cmd.Parameters["$limit"].Value = limit - rows.Count;
            ReadRows(cmd, rows);
            if (rows.Count >= limit)
            {
                break;
            }
        }

        rows.RemoveAll(r => running.ContainsKey(r.Id));
        if (rows.Count > limit)
        {
            rows.RemoveRange(limit, rows.Count - limit);
        }

        return rows;
    }

    /// <summary>The earliest due time after now of enqueued work whose constraints hold.</summary>
    public long? NextDue(long now, ConstraintBits unmet)
    {
        var cmd = Command("next_due",
            "SELECT MIN(t) FROM (" +
            "SELECT (SELECT next_run_at FROM work WHERE state=0 AND expedited=1 AND next_run_at>$now AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at LIMIT 1) AS t " +
            "UNION ALL SELECT (SELECT next_run_at FROM work WHERE state=0 AND expedited=0 AND next_run_at>$now AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at LIMIT 1));");
        cmd.Parameters["$now"].Value = now;
        cmd.Parameters["$unmet"].Value = (long)unmet;
        var value = cmd.ExecuteScalar();
        return value is long l ? l : null;
    }

    public List<WorkRow> Running()
    {
        var cmd = Command("running", $"SELECT {Columns} FROM work WHERE state=1;");
        return ReadRows(cmd);
    }

    public List<WorkRow> SelectForWrite(WorkQuery query)
    {
        using var cmd = _write.CreateCommand();
        BuildQuery(cmd, query);
        return ReadRows(cmd);
    }

    // ---- queries on read connections ----

    public List<WorkInfo> Query(WorkQuery query)
    {
        using var connection = OpenRead();
        using var cmd = connection.CreateCommand();
        BuildQuery(cmd, query);
        return ReadRows(cmd).ConvertAll(r => r.ToInfo());
    }

    private static void BuildQuery(SqliteCommand cmd, WorkQuery query)
    {
        var sql = new StringBuilder($"SELECT {Columns} FROM work WHERE 1=1");
        if (query.Ids.Count > 0)
        {
            sql.Append(" AND id IN (").AppendJoin(',', query.Ids.Select((id, i) => Param(cmd, "$i" + i, id))).Append(')');
        }

        if (query.UniqueNames.Count > 0)
        {
            sql.Append(" AND id IN (SELECT work_id FROM work_name WHERE name IN (")
               .AppendJoin(',', query.UniqueNames.Select((n, i) => Param(cmd, "$n" + i, n))).Append("))");
        }

        if (query.Tags.Count > 0)
        {
            var tags = string.Join(',', query.Tags.Select((t, i) => Param(cmd, "$t" + i, t)));
            sql.Append(" AND (worker_name IN (").Append(tags).Append(") OR id IN (SELECT work_id FROM work_tag WHERE tag IN (").Append(tags).Append(")))");
        }

        if (query.States.Count > 0)
        {
            sql.Append(" AND state IN (").AppendJoin(',', query.States.Select(s => ((int)s).ToString(CultureInfo.InvariantCulture))).Append(')');
        }

        sql.Append(" ORDER BY seq;");
        cmd.CommandText = sql.ToString();

        static string Param(SqliteCommand cmd, string name, object value)
        {
            cmd.Parameters.AddWithValue(name, value);
            return name;
        }
    }

    // ---- plumbing ----

    private void EnsureSchema()
    {
        Execute(_write, """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS work (
                seq INTEGER PRIMARY KEY,
                id BLOB NOT NULL UNIQUE,
                worker_name TEXT NOT NULL,
                state INTEGER NOT NULL,
                input TEXT NOT NULL,
                output TEXT NOT NULL DEFAULT '{}',
                progress TEXT,
                tags TEXT NOT NULL,
                unique_name TEXT,
                input_merger TEXT NOT NULL,
                requires INTEGER NOT NULL,
                initial_delay_ms INTEGER NOT NULL,
                interval_ms INTEGER NOT NULL,
                flex_ms INTEGER NOT NULL,
                backoff_policy INTEGER NOT NULL,
                backoff_delay_ms INTEGER NOT NULL,
                expedited INTEGER NOT NULL,
                out_of_quota INTEGER NOT NULL,
                last_enqueue_time INTEGER NOT NULL,
                run_attempt_count INTEGER NOT NULL,
                period_count INTEGER NOT NULL,
                generation INTEGER NOT NULL,
                stop_reason INTEGER NOT NULL,
                failure_reason TEXT,
                next_run_at INTEGER NOT NULL,
                override_constraints INTEGER NOT NULL,
                has_prerequisites INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                finished_at INTEGER,
                has_dependents INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS work_due ON work (expedited, next_run_at, seq) WHERE state = 0;
            CREATE INDEX IF NOT EXISTS work_running ON work (seq) WHERE state = 1;
            CREATE TABLE IF NOT EXISTS work_tag (tag TEXT NOT NULL, work_id BLOB NOT NULL, PRIMARY KEY (tag, work_id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS work_tag_work ON work_tag (work_id);
            CREATE TABLE IF NOT EXISTS work_name (name TEXT NOT NULL, work_id BLOB NOT NULL, PRIMARY KEY (name, work_id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS work_name_work ON work_name (work_id);
            CREATE TABLE IF NOT EXISTS dependency (work_id BLOB NOT NULL, prerequisite_id BLOB NOT NULL, PRIMARY KEY (work_id, prerequisite_id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS dependency_prerequisite ON dependency (prerequisite_id);
            """);
        using var cmd = _write.CreateCommand();
        cmd.CommandText = "SELECT value FROM meta WHERE key='schema_version';";
        var version = cmd.ExecuteScalar() as string;
        if (version is null)
        {
            Execute(_write, $"INSERT INTO meta (key, value) VALUES ('schema_version', '{SchemaVersion}');");
        }
        else if (int.Parse(version, CultureInfo.InvariantCulture) > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"The work store {Path} has schema version {version}, newer than this Converge.Work ({SchemaVersion}). Upgrade Converge.Work.");
        }
    }

    private SqliteCommand Command(string key, string sql)
    {
        if (!_commands.TryGetValue(key, out var cmd))
        {
            cmd = _write.CreateCommand();
            cmd.CommandText = sql;
            foreach (var name in ParameterNames(sql))
            {
                cmd.Parameters.Add(new SqliteParameter(name, null));
            }

            _commands[key] = cmd;
        }

        return cmd;
    }

    private static IEnumerable<string> ParameterNames(string sql)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < sql.Length; i++)
        {
            if (sql[i] != '$')
            {
                continue;
            }

            var j = i + 1;
            while (j < sql.Length && (char.IsLetterOrDigit(sql[j]) || sql[j] == '_'))
            {
                j++;
            }

            var name = sql[i..j];
            if (seen.Add(name))
            {
                yield return name;
            }

            i = j - 1;
        }
    }

    private void Run(string sql, params (string Name, object Value)[] parameters)
    {
        using var cmd = _write.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        cmd.ExecuteNonQuery();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private void Bind(SqliteCommand cmd, WorkRow row)
    {
        var p = cmd.Parameters;
        p["$id"].Value = row.Id;
        p["$worker_name"].Value = row.WorkerName;
        p["$state"].Value = (int)row.State;
        p["$input"].Value = row.InputJson;
        p["$output"].Value = row.OutputJson;
        p["$progress"].Value = (object?)row.ProgressJson ?? DBNull.Value;
        p["$tags"].Value = row.TagsJson;
        p["$unique_name"].Value = (object?)row.UniqueName ?? DBNull.Value;
        p["$input_merger"].Value = row.InputMerger;
        p["$requires"].Value = (long)row.Constraints.Required();
        p["$initial_delay_ms"].Value = (long)row.InitialDelay.TotalMilliseconds;
        p["$interval_ms"].Value = (long)row.Interval.TotalMilliseconds;
        p["$flex_ms"].Value = (long)row.Flex.TotalMilliseconds;
        p["$backoff_policy"].Value = (int)row.BackoffPolicy;
        p["$backoff_delay_ms"].Value = (long)row.BackoffDelay.TotalMilliseconds;
        p["$expedited"].Value = row.Expedited ? 1 : 0;
        p["$out_of_quota"].Value = (int)row.OutOfQuotaPolicy;
        p["$last_enqueue_time"].Value = row.LastEnqueueTime;
        p["$run_attempt_count"].Value = row.RunAttemptCount;
        p["$period_count"].Value = row.PeriodCount;
        p["$generation"].Value = row.Generation;
        p["$stop_reason"].Value = (int)row.StopReason;
        p["$failure_reason"].Value = (object?)row.FailureReason ?? DBNull.Value;
        p["$next_run_at"].Value = row.NextRunAt;
        p["$override_constraints"].Value = row.OverrideConstraints ? 1 : 0;
        p["$has_prerequisites"].Value = row.HasPrerequisites ? 1 : 0;
        p["$created_at"].Value = row.CreatedAt;
        p["$batch_time"].Value = BatchTime;
    }

    private static List<WorkRow> ReadRows(SqliteCommand cmd, List<WorkRow>? rows = null)
    {
        rows ??= [];
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows.Add(WorkRow.Read(r));
        }

        return rows;
    }

    private static List<Guid> ReadGuids(SqliteCommand cmd)
    {
        var ids = new List<Guid>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            ids.Add(r.GetGuid(0));
        }

        return ids;
    }

}

/// <summary>Thrown when a second scheduler tries to open a work store that a scheduler already runs on.</summary>
public sealed class WorkStoreLockedException : IOException
{
    internal WorkStoreLockedException(string path, Exception inner)
        : base(
            $"The work store '{path}' is already opened by a running scheduler (its lock file '{path}.lock' is held). " +
            "Only one scheduler may run per store; open this one with WorkManagerOptions.EnqueueOnly = true to enqueue, query and cancel.",
            inner)
    {
        StorePath = path;
    }

    /// <summary>Gets the path of the store.</summary>
    public string StorePath { get; }
}
