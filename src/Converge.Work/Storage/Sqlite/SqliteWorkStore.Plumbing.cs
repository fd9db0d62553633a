using System.Globalization;
using Converge.Work.Storage;
using Microsoft.Data.Sqlite;

namespace Converge.Work;

/// <summary>The SQLite store's schema, its cache of prepared commands, and how rows are bound and read.</summary>
internal sealed partial class SqliteWorkStore
{
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
        p["$requires"].Value = (long)row.Requires;
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
