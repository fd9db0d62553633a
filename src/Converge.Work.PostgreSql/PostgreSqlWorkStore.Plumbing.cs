using Converge.Work.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Converge.Work;

/// <summary>The PostgreSQL store's batching: queued transaction control goes out in front of the next statement; and how rows are bound and read.</summary>
internal sealed partial class PostgreSqlWorkStore
{
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
        row.InputMerger, (long)row.Requires, (long)row.InitialDelay.TotalMilliseconds, (long)row.Interval.TotalMilliseconds,
        (long)row.Flex.TotalMilliseconds, (int)row.BackoffPolicy, (long)row.BackoffDelay.TotalMilliseconds, row.Expedited,
        (int)row.OutOfQuotaPolicy, row.LastEnqueueTime, row.RunAttemptCount, row.PeriodCount, row.Generation, (int)row.StopReason,
        Text(row.FailureReason), row.NextRunAt, row.OverrideConstraints, row.HasPrerequisites, row.CreatedAt, BatchTime,
    ];

    private async ValueTask<List<WorkRow>> ReadRowsAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        var rows = new List<WorkRow>();
        var r = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add(ReadRow(r));
            }

            return rows;
        }
    }

    private static async ValueTask<List<Guid>> ReadGuidsAsync(NpgsqlBatch batch)
    {
        var ids = new List<Guid>();
        var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        await using (r.ConfigureAwait(false))
        {
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                ids.Add(r.GetGuid(0));
            }

            return ids;
        }
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
}
