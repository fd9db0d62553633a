using System.Globalization;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>An outbox row: a mutation's keys and its JSON, exactly as pushed.</summary>
internal sealed record OutboxRow(long Id, string Scope, string Collection, string DocumentId, string? ConflictId, byte[] Json);

/// <summary>The writes of a transaction to the outbox: the local mutations not yet acknowledged, in push order, and the next mutation id.</summary>
internal sealed class OutboxWrites(ClientStore store, StoreStatements sql)
{
    /// <summary>Takes the next mutation id: per client, increasing by one, never reused even after the outbox drains.</summary>
    /// <remarks>Kept in memory (a rolled-back transaction gives its ids back); the outbox row holds it, and removing rows from the outbox stores the next id in meta.</remarks>
    public long NextMutationId() => store.NextMutationId++;

    public void Add(Mutation mutation)
    {
        sql.Mutations.Write(mutation);
        sql.AddToOutbox
            .Int(0, mutation.Id)
            .Text(1, mutation.Scope)
            .Text(2, mutation.Collection)
            .Text(3, mutation.DocumentId)
            .Text(4, mutation.ConflictId)
            .Text(5, sql.Mutations.Json)
            .Execute();
    }

    /// <summary>
    /// Inserts the row of a new document whose put (see <see cref="AddPut"/>) it holds: its value is the put's
    /// fields, each with the put's timestamp. The put's JSON must be the last one written (see <see cref="WriteMutation"/>).
    /// </summary>
    /// <returns>Whether the row was inserted: <see langword="false"/>, changing nothing, when the document has a row.</returns>
    public bool TryInsertPut(Mutation put)
    {
        Span<byte> hlc = stackalloc byte[HybridTimestamp.TextLength + 2];
        Span<char> chars = stackalloc char[HybridTimestamp.TextLength];
        put.Hlc.TryFormat(chars, out _);
        hlc[0] = (byte)'"';
        System.Text.Encoding.ASCII.GetBytes(chars, hlc[1..]);
        hlc[^1] = (byte)'"';
        return sql.InsertPut
            .Text(0, put.Scope)
            .Text(1, put.Collection)
            .Text(2, put.DocumentId)
            .Text(3, sql.Mutations.Fields)
            .Text(4, hlc)
            .Int(5, put.Id)
            .Execute() == 1;
    }

    /// <summary>Writes a mutation's JSON into the writer, for <see cref="LastMutationFields"/> and <see cref="TryInsertPut"/>, without adding it to the outbox.</summary>
    public void WriteMutation(Mutation mutation) => sql.Mutations.Write(mutation);

    /// <summary>
    /// Adds a new document's put to the outbox without its JSON: the document's row, inserted by <see cref="TryInsertPut"/>,
    /// holds it (its value is the put's fields, its timestamp the put's), so the write costs no outbox index entry.
    /// Triggers write the put's JSON into the outbox row before the document's value changes or its row goes.
    /// </summary>
    public void AddPut(Mutation mutation) =>
        sql.AddPutToOutbox
            .Int(0, mutation.Id)
            .Text(1, mutation.Scope)
            .Text(2, mutation.Collection)
            .Text(3, mutation.DocumentId)
            .Execute();

    /// <summary>Gets the JSON object of the fields of the mutation last added to the outbox, as it was written there.</summary>
    public string LastMutationFields() => System.Text.Encoding.UTF8.GetString(sql.Mutations.Fields);

    public void Remove(long id) => Remove(id - 1, id);

    /// <summary>Removes the outbox's mutations with ids in (<paramref name="after"/>, <paramref name="last"/>], and stores the next mutation id, which their rows held until now.</summary>
    public void Remove(long after, long last)
    {
        sql.RemoveFromOutbox.Int(0, after).Int(1, last).Execute();
        sql.WriteNextMutationId.Int(0, Math.Max(store.NextMutationId, last + 1)).Execute();
    }

    /// <summary>Gives every outbox mutation a new id, 1, 2, 3, … in outbox order, and makes the next id follow them; for a client that takes a new replica id.</summary>
    /// <param name="upTo">An old id.</param>
    /// <returns>The new id of the last mutation whose old id was at most <paramref name="upTo"/> (0 when none was).</returns>
    /// <remarks>Each stored mutation is rewritten with its new id; nothing else of it changes, its timestamp included.</remarks>
    public long Renumber(long upTo)
    {
        var rows = Read(null);
        using (var delete = store.CreateCommand())
        {
            delete.CommandText = "DELETE FROM outbox;";
            delete.ExecuteNonQuery();
        }

        long mapped = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            var (oldId, mutation) = rows[i];
            Add(mutation with { Id = i + 1 });
            if (oldId <= upTo)
            {
                mapped = i + 1;
            }
        }

        store.NextMutationId = rows.Count + 1;
        using var next = store.CreateCommand();
        next.CommandText = "UPDATE meta SET value = $v WHERE key = 'next_mutation_id';";
        next.Parameters.AddWithValue("$v", (rows.Count + 1).ToString(CultureInfo.InvariantCulture));
        next.ExecuteNonQuery();
        return mapped;
    }

    /// <summary>Moves a scope's outbox mutations behind every other one: in their order, each with the next mutation id and a new timestamp.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="stamp">Gives each moved mutation its new timestamp, so a client's ids and timestamps keep growing together.</param>
    /// <returns>How many mutations moved.</returns>
    public int MoveToEnd(string scope, Func<HybridTimestamp> stamp)
    {
        var rows = Read(scope);
        using (var delete = store.CreateCommand())
        {
            delete.CommandText = "DELETE FROM outbox WHERE scope = $s;";
            delete.Parameters.AddWithValue("$s", scope);
            delete.ExecuteNonQuery();
        }

        foreach (var (_, mutation) in rows)
        {
            Add(mutation with { Id = NextMutationId(), Hlc = stamp() });
        }

        return rows.Count;
    }

    /// <summary>Reads a document's pending mutations, in outbox order.</summary>
    public List<Mutation> Pending(string scope, string collection, string id)
    {
        var result = new List<Mutation>();
        var statement = sql.PendingMutations.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        while (rows.Next())
        {
            result.Add(StoreJson.DeserializeMutation(statement.String(1)!));
        }

        return result;
    }

    /// <summary>Whether a resolution of the conflict waits in the outbox.</summary>
    public bool HasPendingResolve(string conflictId)
    {
        var statement = sql.HasPendingResolve.Text(0, conflictId);
        using var rows = statement.Query();
        return rows.Next() && statement.Int64(0) != 0;
    }

    private List<(long Id, Mutation Mutation)> Read(string? scope)
    {
        using var command = store.CreateCommand();
        command.CommandText = scope is null
            ? "SELECT o.id, " + ClientStore.OutboxMutation + " FROM outbox o ORDER BY o.id;"
            : "SELECT o.id, " + ClientStore.OutboxMutation + " FROM outbox o WHERE o.scope = $s ORDER BY o.id;";
        if (scope is not null)
        {
            command.Parameters.AddWithValue("$s", scope);
        }

        var rows = new List<(long, Mutation)>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            rows.Add((reader.GetInt64(0), StoreJson.DeserializeMutation(reader.GetString(1))));
        }

        return rows;
    }
}
