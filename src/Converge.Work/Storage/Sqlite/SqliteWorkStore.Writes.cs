using Converge.Work.Storage;
using Microsoft.Data.Sqlite;

namespace Converge.Work;

/// <summary>The SQLite store's writes, on the write connection inside the batch's transaction.</summary>
internal sealed partial class SqliteWorkStore
{
    public ValueTask InsertAsync(WorkRow row, IReadOnlyCollection<Guid> prerequisites)
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

        InsertTags(row);

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

        return ValueTask.CompletedTask;
    }

    public ValueTask UpdateAsync(WorkRow row)
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
        return ValueTask.CompletedTask;
    }

    public ValueTask ReplaceTagsAsync(WorkRow row)
    {
        Run("DELETE FROM work_tag WHERE work_id=$id;", ("$id", row.Id));
        InsertTags(row);
        return ValueTask.CompletedTask;
    }

    /// <summary>Indexes a work item's tags, but for its worker's name, which the worker_name column already finds.</summary>
    private void InsertTags(WorkRow row)
    {
        var tag = Command("insert_tag", "INSERT OR IGNORE INTO work_tag (tag, work_id) VALUES ($tag, $id);");
        foreach (var t in row.Tags)
        {
            if (t == row.WorkerName)
            {
                continue;
            }

            tag.Parameters["$tag"].Value = t;
            tag.Parameters["$id"].Value = row.Id;
            tag.ExecuteNonQuery();
        }
    }

    /// <summary>The claim: only what a start changes, by primary key.</summary>
    /// <returns>Whether the row was still enqueued with the attempt count read, and so is now running.</returns>
    public ValueTask<IReadOnlyList<bool>> MarkRunningAsync(IReadOnlyList<WorkRow> rows)
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

        return new(claimed);
    }

    /// <summary>Finishes a running one-time work with one narrow update.</summary>
    /// <returns>Whether other work depends on it, or <see langword="null"/> when it was no longer running.</returns>
    public ValueTask<bool?> FinishOneTimeAsync(OneTimeFinish finish)
    {
        var cmd = Command("finish_one_time",
            "UPDATE work SET state=$state, output=$output, progress=NULL, stop_reason=0, override_constraints=0, " +
            "failure_reason=$failure, finished_at=$batch_time WHERE id=$id AND state=1 RETURNING has_dependents;");
        cmd.Parameters["$state"].Value = (int)finish.State;
        cmd.Parameters["$output"].Value = finish.OutputJson;
        cmd.Parameters["$failure"].Value = (object?)finish.FailureReason ?? DBNull.Value;
        cmd.Parameters["$batch_time"].Value = BatchTime;
        cmd.Parameters["$id"].Value = finish.Id;
        return new(cmd.ExecuteScalar() is long dependents ? dependents != 0 : null);
    }

    public ValueTask<IReadOnlySet<Guid>> FinishOneTimeWithoutDependentsAsync(IReadOnlyList<OneTimeFinish> finishes)
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

        return new(finished);
    }

    /// <summary>Deletes finished work that finished at or before <paramref name="finishedBefore"/> and that no unfinished work depends on.</summary>
    /// <returns>The ids deleted.</returns>
    public ValueTask<IReadOnlyList<Guid>> PruneAsync(long finishedBefore)
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
        return new(ids);
    }

    public ValueTask SetProgressAsync(Guid id, string? progressJson)
    {
        Run("UPDATE work SET progress=$p WHERE id=$id;", ("$p", (object?)progressJson ?? DBNull.Value), ("$id", id));
        return ValueTask.CompletedTask;
    }

    public ValueTask DeleteAsync(Guid id)
    {
        var key = id;
        Run("DELETE FROM work WHERE id=$id;", ("$id", key));
        Run("DELETE FROM work_tag WHERE work_id=$id;", ("$id", key));
        Run("DELETE FROM work_name WHERE work_id=$id;", ("$id", key));
        Run("DELETE FROM dependency WHERE work_id=$id OR prerequisite_id=$id;", ("$id", key));
        return ValueTask.CompletedTask;
    }
}
