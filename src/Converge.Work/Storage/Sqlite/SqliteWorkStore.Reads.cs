using System.Globalization;
using System.Text;
using Converge.Work.Storage;
using Microsoft.Data.Sqlite;

namespace Converge.Work;

/// <summary>The SQLite store's reads: inside the batch's transaction on the write connection, and queries on pooled read connections.</summary>
internal sealed partial class SqliteWorkStore
{
    public ValueTask<WorkRow?> GetAsync(Guid id)
    {
        var cmd = Command("get", $"SELECT {Columns} FROM work WHERE id=$id;");
        cmd.Parameters["$id"].Value = id;
        using var r = cmd.ExecuteReader();
        return new(r.Read() ? WorkRow.Read(r) : null);
    }

    public ValueTask<IReadOnlyList<WorkRow>> GetByNameAsync(string name)
    {
        var cmd = Command("by_name", $"SELECT {Columns} FROM work WHERE id IN (SELECT work_id FROM work_name WHERE name=$name) ORDER BY seq;");
        cmd.Parameters["$name"].Value = name;
        return new(ReadRows(cmd));
    }

    public ValueTask<IReadOnlyList<Guid>> DependentsAsync(Guid id)
    {
        var cmd = Command("dependents", "SELECT work_id FROM dependency WHERE prerequisite_id=$id;");
        cmd.Parameters["$id"].Value = id;
        return new(ReadGuids(cmd));
    }

    public ValueTask<bool> HasDependentsAsync(Guid id)
    {
        var cmd = Command("has_dependents", "SELECT EXISTS (SELECT 1 FROM dependency WHERE prerequisite_id=$id);");
        cmd.Parameters["$id"].Value = id;
        return new((long)cmd.ExecuteScalar()! != 0);
    }

    /// <summary>Prerequisite states, for the unblock check.</summary>
    public ValueTask<IReadOnlyList<WorkState>> PrerequisiteStatesAsync(Guid id)
    {
        var cmd = Command("pre_states", "SELECT w.state FROM dependency d JOIN work w ON w.id = d.prerequisite_id WHERE d.work_id=$id;");
        cmd.Parameters["$id"].Value = id;
        var result = new List<WorkState>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            result.Add((WorkState)r.GetInt32(0));
        }

        return new(result);
    }

    /// <summary>Outputs of a work item's prerequisites, oldest prerequisite first.</summary>
    public ValueTask<IReadOnlyList<string>> PrerequisiteOutputsAsync(Guid id)
    {
        var cmd = Command("pre_outputs", "SELECT w.output FROM dependency d JOIN work w ON w.id = d.prerequisite_id WHERE d.work_id=$id ORDER BY w.seq;");
        cmd.Parameters["$id"].Value = id;
        var result = new List<string>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            result.Add(r.GetString(0));
        }

        return new(result);
    }

    /// <summary>Enqueued work items that are due and whose constraints hold, expedited first, then by due time and age.</summary>
    public ValueTask<IReadOnlyList<WorkRow>> DueAsync(DueQuery query)
    {
        var limit = query.Limit;
        // One index range scan per priority, expedited first, so not-yet-due work is never walked.
        var rows = new List<WorkRow>();
        foreach (var expedited in s_priorities)
        {
            var cmd = Command(expedited ? "due_expedited" : "due_normal",
                $"SELECT {Columns} FROM work WHERE state=0 AND expedited={(expedited ? 1 : 0)} AND next_run_at<=$now " +
                "AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at, seq LIMIT $limit;");
            cmd.Parameters["$now"].Value = query.Now;
            cmd.Parameters["$unmet"].Value = (long)query.Unmet;
            cmd.Parameters["$limit"].Value = limit - rows.Count;
            ReadRows(cmd, rows);
            if (rows.Count >= limit)
            {
                break;
            }
        }

        rows.RemoveAll(r => query.Running.Contains(r.Id));
        if (rows.Count > limit)
        {
            rows.RemoveRange(limit, rows.Count - limit);
        }

        return new(rows);
    }

    /// <summary>The earliest due time after now of enqueued work whose constraints hold.</summary>
    public ValueTask<long?> NextDueAsync(long after, ConstraintBits unmet)
    {
        var cmd = Command("next_due",
            "SELECT MIN(t) FROM (" +
            "SELECT (SELECT next_run_at FROM work WHERE state=0 AND expedited=1 AND next_run_at>$now AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at LIMIT 1) AS t " +
            "UNION ALL SELECT (SELECT next_run_at FROM work WHERE state=0 AND expedited=0 AND next_run_at>$now AND ((requires & $unmet)=0 OR override_constraints=1) ORDER BY next_run_at LIMIT 1));");
        cmd.Parameters["$now"].Value = after;
        cmd.Parameters["$unmet"].Value = (long)unmet;
        var value = cmd.ExecuteScalar();
        return new(value is long l ? l : null);
    }

    public ValueTask<IReadOnlyList<WorkRow>> RunningAsync()
    {
        var cmd = Command("running", $"SELECT {Columns} FROM work WHERE state=1;");
        return new(ReadRows(cmd));
    }

    public ValueTask<IReadOnlyList<WorkRow>> SelectForWriteAsync(WorkQuery query)
    {
        using var cmd = _write.CreateCommand();
        BuildQuery(cmd, query);
        return new(ReadRows(cmd));
    }

    // ---- queries on read connections ----

    /// <summary>Answers a query on a pooled read connection; a local read completes at once, so the token is checked only before it.</summary>
    public ValueTask<IReadOnlyList<WorkRow>> QueryAsync(WorkQuery query, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = OpenRead();
        using var cmd = connection.CreateCommand();
        BuildQuery(cmd, query);
        return new(ReadRows(cmd));
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
}
