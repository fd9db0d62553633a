using Converge.Work.Storage;
using Npgsql;

namespace Converge.Work;

/// <summary>The PostgreSQL store's writes, in the batch's transaction on the node's write connection.</summary>
internal sealed partial class PostgreSqlWorkStore
{
    public async ValueTask InsertAsync(WorkRow row, IReadOnlyCollection<Guid> prerequisites)
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
            row.Seq = (long)(await batch.ExecuteScalarAsync().ConfigureAwait(false))!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "work_id_key")
        {
            throw new InvalidOperationException($"Work {row.Id} already exists; every request needs its own id.", e);
        }
    }

    public async ValueTask UpdateAsync(WorkRow row)
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
        await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public async ValueTask ReplaceTagsAsync(WorkRow row)
    {
        var tags = row.Tags.Where(t => t != row.WorkerName).ToArray();
        using var batch = Batch(
            Cmd($"DELETE FROM {_s}.work_tag WHERE work_id = $1", row.Id),
            Cmd($"INSERT INTO {_s}.work_tag (tag, work_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING", tags, row.Id));
        await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<bool>> MarkRunningAsync(IReadOnlyList<WorkRow> rows)
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
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                marked.Add(r.GetInt64(0));
            }
        }

        return Array.ConvertAll(seqs, marked.Contains);
    }

    public async ValueTask<IReadOnlySet<Guid>> FinishOneTimeWithoutDependentsAsync(IReadOnlyList<OneTimeFinish> finishes)
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
        return (await ReadGuidsAsync(batch).ConfigureAwait(false)).ToHashSet();
    }

    public async ValueTask<bool?> FinishOneTimeAsync(OneTimeFinish finish)
    {
        using var batch = Batch(Cmd(
            $"UPDATE {_s}.work SET state = $2, output = $3, progress = NULL, stop_reason = 0, override_constraints = false, failure_reason = $4, " +
            "finished_at = $5, owner = NULL, lease_until = NULL WHERE id = $1 AND state = 1 AND owner = $6 RETURNING has_dependents",
            finish.Id, (short)finish.State, finish.OutputJson, Text(finish.FailureReason), BatchTime, _node));
        return await batch.ExecuteScalarAsync().ConfigureAwait(false) is bool dependents ? dependents : null;
    }

    public async ValueTask<IReadOnlyList<Guid>> PruneAsync(long finishedBefore)
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
        return await ReadGuidsAsync(batch).ConfigureAwait(false);
    }

    public async ValueTask SetProgressAsync(Guid id, string? progressJson)
    {
        using var batch = Batch(Cmd($"UPDATE {_s}.work SET progress = $2 WHERE id = $1 AND owner = $3", id, progressJson, _node));
        await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public async ValueTask DeleteAsync(Guid id)
    {
        using var batch = Batch(
            Cmd($"DELETE FROM {_s}.work_tag WHERE work_id = $1", id),
            Cmd($"DELETE FROM {_s}.work_name WHERE work_id = $1", id),
            Cmd($"DELETE FROM {_s}.dependency WHERE work_id = $1 OR prerequisite_id = $1", id),
            Cmd($"DELETE FROM {_s}.work WHERE id = $1", id));
        await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    }
}
