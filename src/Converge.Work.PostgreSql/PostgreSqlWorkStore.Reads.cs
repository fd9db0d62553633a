using System.Globalization;
using System.Text;
using Converge.Work.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Converge.Work;

/// <summary>The PostgreSQL store's reads: in the batch's transaction on the write connection, and queries on pooled connections.</summary>
internal sealed partial class PostgreSqlWorkStore
{
    public async ValueTask<WorkRow?> GetAsync(Guid id)
    {
        // Locked until the batch ends: what the scheduler decides from the row still holds when it writes it back.
        using var batch = Batch(Cmd($"SELECT {Columns} FROM {_s}.work WHERE id = $1 FOR NO KEY UPDATE", id));
        var rows = await ReadRowsAsync(batch, CancellationToken.None).ConfigureAwait(false);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async ValueTask<IReadOnlyList<WorkRow>> GetByNameAsync(string name)
    {
        // Two nodes enqueueing the same unique name take turns, as writers of one SQLite file do.
        using var batch = Batch(
            Cmd("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _s + "/" + name),
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE id IN (SELECT work_id FROM {_s}.work_name WHERE name = $1) ORDER BY seq FOR NO KEY UPDATE", name));
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            await r.NextResultAsync().ConfigureAwait(false); // past the lock's result
            var rows = new List<WorkRow>();
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                rows.Add(ReadRow(r));
            }

            return rows;
        }
    }

    public async ValueTask<IReadOnlyList<Guid>> DependentsAsync(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT work_id FROM {_s}.dependency WHERE prerequisite_id = $1", id));
        return await ReadGuidsAsync(batch).ConfigureAwait(false);
    }

    public async ValueTask<bool> HasDependentsAsync(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT EXISTS (SELECT 1 FROM {_s}.dependency WHERE prerequisite_id = $1)", id));
        return (bool)(await batch.ExecuteScalarAsync().ConfigureAwait(false))!;
    }

    public async ValueTask<IReadOnlyList<WorkState>> PrerequisiteStatesAsync(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT w.state FROM {_s}.dependency d JOIN {_s}.work w ON w.id = d.prerequisite_id WHERE d.work_id = $1", id));
        var result = new List<WorkState>();
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                result.Add((WorkState)r.GetInt16(0));
            }

            return result;
        }
    }

    public async ValueTask<IReadOnlyList<string>> PrerequisiteOutputsAsync(Guid id)
    {
        using var batch = Batch(Cmd($"SELECT w.output FROM {_s}.dependency d JOIN {_s}.work w ON w.id = d.prerequisite_id WHERE d.work_id = $1 ORDER BY w.seq", id));
        var result = new List<string>();
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                result.Add(r.GetString(0));
            }

            return result;
        }
    }

    public async ValueTask<IReadOnlyList<WorkRow>> DueAsync(DueQuery query)
    {
        // Expedited first, each an index range scan with a plain limit (a plan that stops early, whatever the cached
        // plan), both in one round trip. The statements lock what they return until the claim commits, and other nodes
        // skip locked rows rather than wait for them. Only when both kinds are due can more rows be locked than claimed,
        // for the few milliseconds of the claim. A node claims only work it has a worker for, and leaves the rest to
        // nodes that do.
        const string Where = "state = 0 AND next_run_at <= $1 AND ((requires & $2) = 0 OR override_constraints) AND ($4::text[] IS NULL OR worker_name = ANY($4)) " +
            "ORDER BY next_run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED";
        var (now, unmet, limit, workers) = (query.Now, (long)query.Unmet, query.Limit, query.Workers);
        var names = workers is null
            ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text }
            : new NpgsqlParameter { Value = workers.ToArray() };
        using var batch = Batch(
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE expedited AND {Where}", now, unmet, limit, names),
            Cmd($"SELECT {Columns} FROM {_s}.work WHERE NOT expedited AND {Where}", now, unmet, limit, names.Clone()));
        var rows = new List<WorkRow>();
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            do
            {
                while (await r.ReadAsync().ConfigureAwait(false))
                {
                    rows.Add(ReadRow(r));
                }
            }
            while (await r.NextResultAsync().ConfigureAwait(false));
        }

        rows.RemoveAll(row => query.Running.Contains(row.Id));
        if (rows.Count > limit)
        {
            rows.RemoveRange(limit, rows.Count - limit);
        }

        return rows;
    }

    public async ValueTask<long?> NextDueAsync(long after, ConstraintBits unmet)
    {
        const string Where = "state = 0 AND next_run_at > $1 AND ((requires & $2) = 0 OR override_constraints) ORDER BY next_run_at LIMIT 1";
        using var batch = Batch(Cmd(
            $"SELECT least((SELECT next_run_at FROM {_s}.work WHERE expedited AND {Where}), (SELECT next_run_at FROM {_s}.work WHERE NOT expedited AND {Where}))",
            after, (long)unmet));
        return await batch.ExecuteScalarAsync().ConfigureAwait(false) is long next ? next : null;
    }

    public async ValueTask<IReadOnlyList<WorkRow>> RunningAsync()
    {
        using var batch = Batch(Cmd($"SELECT {Columns} FROM {_s}.work WHERE state = 1 AND owner = $1", _node));
        return await ReadRowsAsync(batch, CancellationToken.None).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<WorkRow>> SelectForWriteAsync(WorkQuery query)
    {
        using var batch = Batch(BuildQuery(query));
        return await ReadRowsAsync(batch, CancellationToken.None).ConfigureAwait(false);
    }

    // ---- queries on pooled connections ----

    /// <summary>Answers a query on a pooled connection; a cancelled token cancels the statement on the server.</summary>
    public async ValueTask<IReadOnlyList<WorkRow>> QueryAsync(WorkQuery query, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var batch = new NpgsqlBatch(connection);
            batch.BatchCommands.Add(BuildQuery(query));
            return await ReadRowsAsync(batch, cancellationToken).ConfigureAwait(false);
        }
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
}
