using System.Globalization;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Storage;

/// <summary>A stored document row; the server state is parsed when first read.</summary>
internal sealed class DocumentRow(string? serverStateJson, long serverRevision, string? localValue, string? localTimestamps, int pending)
{
    private DocumentState? _serverState;

    /// <summary>Gets the server's state as stored, or <see langword="null"/> when the server has not sent the document.</summary>
    public string? ServerStateJson { get; } = serverStateJson;

    public DocumentState? ServerState => ServerStateJson is null ? null : _serverState ??= StoreJson.DeserializeState(ServerStateJson);

    public long ServerRevision { get; } = serverRevision;

    public string? LocalValue { get; } = localValue;

    public string? LocalTimestamps { get; } = localTimestamps;

    public int Pending { get; } = pending;
}

/// <summary>An outbox row: a mutation's keys and its JSON, exactly as pushed.</summary>
internal sealed record OutboxRow(long Id, string Scope, string Collection, string DocumentId, string? ConflictId, byte[] Json);

/// <summary>A stored conflict row.</summary>
internal sealed record ConflictRow(ConflictRecord Record, bool Resolving);

/// <summary>
/// The operations of one write transaction, on the store's write connection, with its statements prepared once.
/// The next mutation id and the clock are kept in memory and written once, when the transaction commits.
/// </summary>
internal sealed class StoreTransaction
{
    private readonly ClientStore _store;
    private readonly StoreStatements _sql;
    private HybridTimestamp? _clock;

    public StoreTransaction(ClientStore store, StoreStatements statements)
    {
        _store = store;
        _sql = statements;
    }

    /// <summary>Runs a statement that takes no parameters, such as an index's DDL.</summary>
    public int Execute(string sql) => _store.Execute(sql);

    /// <summary>Writes what the transaction kept in memory; called once, just before the commit.</summary>
    public void Flush()
    {
        if (_clock is { } clock)
        {
            Span<byte> text = stackalloc byte[HybridTimestamp.TextLength];
            Span<char> chars = stackalloc char[HybridTimestamp.TextLength];
            clock.TryFormat(chars, out _);
            System.Text.Encoding.ASCII.GetBytes(chars, text);
            _sql.SaveClock.Text(0, text).Execute();
        }
    }

    // ---- documents ----

    public DocumentRow? GetDocument(string scope, string collection, string id)
    {
        var statement = _sql.GetDocument.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        if (!rows.Next())
        {
            return null;
        }

        return new DocumentRow(statement.String(0), statement.Int64(1), statement.String(2), statement.String(3), (int)statement.Int64(4));
    }

    /// <summary>Reads what a pulled change needs of a stored row: its server revision, local value and pending count.</summary>
    public bool TryGetDocumentBrief(string scope, string collection, string id, out long serverRevision, out string? localValue, out int pending)
    {
        var statement = _sql.GetDocumentBrief.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        if (!rows.Next())
        {
            (serverRevision, localValue, pending) = (0, null, 0);
            return false;
        }

        serverRevision = statement.Int64(0);
        localValue = statement.String(1);
        pending = (int)statement.Int64(2);
        return true;
    }

    /// <summary>Writes a document row, or removes it when it holds nothing: no server state, no value, nothing pending.</summary>
    public void PutDocument(string scope, string collection, string id, string? serverState, long serverRevision, string? localValue, string? localTimestamps, int pending)
    {
        if (serverState is null && localValue is null && pending == 0)
        {
            DeleteDocument(scope, collection, id);
            return;
        }

        _sql.PutDocument.Text(3, serverState);
        PutDocument(scope, collection, id, serverRevision, localValue, localTimestamps, pending);
    }

    /// <summary>Writes a document row whose server state is UTF-8 JSON, as a pull brings it.</summary>
    public void PutDocument(string scope, string collection, string id, ReadOnlySpan<byte> serverState, long serverRevision, string? localValue, string? localTimestamps, int pending)
    {
        _sql.PutDocument.Text(3, serverState);
        PutDocument(scope, collection, id, serverRevision, localValue, localTimestamps, pending);
    }

    /// <summary>Writes a document row from a local view.</summary>
    /// <remarks>
    /// Writing a row clears the put it held (see <see cref="AddPutToOutbox"/>): a trigger first writes the put's JSON
    /// into its outbox row, from the row as it was.
    /// </remarks>
    public void PutDocument(string scope, string collection, string id, DocumentRow? row, LocalView view, string? localValue, int pending) =>
        PutDocument(scope, collection, id, row?.ServerStateJson, row?.ServerRevision ?? 0, localValue, view.TimestampsJson(), pending);

    private void PutDocument(string scope, string collection, string id, long serverRevision, string? localValue, string? localTimestamps, int pending) =>
        _sql.PutDocument
            .Text(0, scope)
            .Text(1, collection)
            .Text(2, id)
            .Int(4, serverRevision)
            .Text(5, localValue)
            .Text(6, localTimestamps)
            .Int(7, pending)
            .Execute();

    public void DeleteDocument(string scope, string collection, string id) =>
        _sql.DeleteDocument.Text(0, scope).Text(1, collection).Text(2, id).Execute();

    /// <summary>Takes the outbox's mutations with ids in (<paramref name="after"/>, <paramref name="last"/>] off their documents' pending counts, in one statement; removes the rows left holding nothing.</summary>
    /// <remarks>Runs before the mutations leave the outbox.</remarks>
    public void SettlePending(long after, long last)
    {
        List<(string Scope, string Collection, string Id)>? empty = null;
        var statement = _sql.SettleBatch.Int(0, after).Int(1, last);
        using (var rows = statement.Query())
        {
            while (rows.Next())
            {
                if (statement.Int64(3) == 0 && statement.Int64(4) != 0)
                {
                    (empty ??= []).Add((statement.String(0)!, statement.String(1)!, statement.String(2)!));
                }
            }
        }

        foreach (var (scope, collection, id) in empty ?? [])
        {
            DeleteDocument(scope, collection, id);
        }
    }

    /// <summary>Drops a scope's documents that have no pending mutations; returns the dropped documents that had a value, with it.</summary>
    public List<(string Collection, string Id, string LocalValue)> DropSettledDocuments(string scope)
    {
        var dropped = new List<(string, string, string)>();
        var statement = _sql.DropSettledDocuments.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            if (statement.String(2) is { } value)
            {
                dropped.Add((statement.String(0)!, statement.String(1)!, value));
            }
        }

        return dropped;
    }

    // ---- outbox ----

    /// <summary>Takes the next mutation id: per client, increasing by one, never reused even after the outbox drains.</summary>
    /// <remarks>Kept in memory (a rolled-back transaction gives its ids back); the outbox row holds it, and removing rows from the outbox stores the next id in meta.</remarks>
    public long NextMutationId() => _store.NextMutationId++;

    public void AddToOutbox(Mutation mutation)
    {
        _sql.Mutations.Write(mutation);
        _sql.AddToOutbox
            .Int(0, mutation.Id)
            .Text(1, mutation.Scope)
            .Text(2, mutation.Collection)
            .Text(3, mutation.DocumentId)
            .Text(4, mutation.ConflictId)
            .Text(5, _sql.Mutations.Json)
            .Execute();
    }

    /// <summary>
    /// Inserts the row of a new document whose put (see <see cref="AddPutToOutbox"/>) it holds: its value is the put's
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
        return _sql.InsertPut
            .Text(0, put.Scope)
            .Text(1, put.Collection)
            .Text(2, put.DocumentId)
            .Text(3, _sql.Mutations.Fields)
            .Text(4, hlc)
            .Int(5, put.Id)
            .Execute() == 1;
    }

    /// <summary>Writes a mutation's JSON into the writer, for <see cref="LastMutationFields"/> and <see cref="TryInsertPut"/>, without adding it to the outbox.</summary>
    public void WriteMutation(Mutation mutation) => _sql.Mutations.Write(mutation);

    /// <summary>
    /// Adds a new document's put to the outbox without its JSON: the document's row, inserted by <see cref="TryInsertPut"/>,
    /// holds it (its value is the put's fields, its timestamp the put's), so the write costs no outbox index entry.
    /// Triggers write the put's JSON into the outbox row before the document's value changes or its row goes.
    /// </summary>
    public void AddPutToOutbox(Mutation mutation) =>
        _sql.AddPutToOutbox
            .Int(0, mutation.Id)
            .Text(1, mutation.Scope)
            .Text(2, mutation.Collection)
            .Text(3, mutation.DocumentId)
            .Execute();

    /// <summary>Gets the JSON object of the fields of the mutation last added to the outbox, as it was written there.</summary>
    public string LastMutationFields() => System.Text.Encoding.UTF8.GetString(_sql.Mutations.Fields);

    public void RemoveFromOutbox(long id) => RemoveFromOutbox(id - 1, id);

    /// <summary>Removes the outbox's mutations with ids in (<paramref name="after"/>, <paramref name="last"/>], and stores the next mutation id, which their rows held until now.</summary>
    public void RemoveFromOutbox(long after, long last)
    {
        _sql.RemoveFromOutbox.Int(0, after).Int(1, last).Execute();
        _sql.WriteNextMutationId.Int(0, Math.Max(_store.NextMutationId, last + 1)).Execute();
    }

    /// <summary>Gives every outbox mutation a new id, 1, 2, 3, … in outbox order, and makes the next id follow them; for a client that takes a new replica id.</summary>
    /// <param name="upTo">An old id.</param>
    /// <returns>The new id of the last mutation whose old id was at most <paramref name="upTo"/> (0 when none was).</returns>
    /// <remarks>Each stored mutation is rewritten with its new id; nothing else of it changes, its timestamp included.</remarks>
    public long RenumberOutbox(long upTo)
    {
        var rows = ReadOutbox(null);
        using (var delete = _store.CreateCommand())
        {
            delete.CommandText = "DELETE FROM outbox;";
            delete.ExecuteNonQuery();
        }

        long mapped = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            var (oldId, mutation) = rows[i];
            AddToOutbox(mutation with { Id = i + 1 });
            if (oldId <= upTo)
            {
                mapped = i + 1;
            }
        }

        _store.NextMutationId = rows.Count + 1;
        using var next = _store.CreateCommand();
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
        var rows = ReadOutbox(scope);
        using (var delete = _store.CreateCommand())
        {
            delete.CommandText = "DELETE FROM outbox WHERE scope = $s;";
            delete.Parameters.AddWithValue("$s", scope);
            delete.ExecuteNonQuery();
        }

        foreach (var (_, mutation) in rows)
        {
            AddToOutbox(mutation with { Id = NextMutationId(), Hlc = stamp() });
        }

        return rows.Count;
    }

    /// <summary>Stores this client's new replica id.</summary>
    public void SetReplicaId(ulong replicaId)
    {
        using var command = _store.CreateCommand();
        command.CommandText = "UPDATE meta SET value = $v WHERE key = 'replica_id';";
        command.Parameters.AddWithValue("$v", ReplicaId.Format(replicaId));
        command.ExecuteNonQuery();
        _store.ReplicaId = replicaId;
    }

    private List<(long Id, Mutation Mutation)> ReadOutbox(string? scope)
    {
        using var command = _store.CreateCommand();
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

    /// <summary>Reads a document's pending mutations, in outbox order.</summary>
    public List<Mutation> PendingMutations(string scope, string collection, string id)
    {
        var result = new List<Mutation>();
        var statement = _sql.PendingMutations.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        while (rows.Next())
        {
            result.Add(StoreJson.DeserializeMutation(statement.String(1)!));
        }

        return result;
    }

    public bool HasPendingResolve(string conflictId)
    {
        var statement = _sql.HasPendingResolve.Text(0, conflictId);
        using var rows = statement.Query();
        return rows.Next() && statement.Int64(0) != 0;
    }

    // ---- cursors and clock ----

    /// <summary>Moves a scope's cursor forward (never back, so pages from two sources may interleave), or anywhere on a reset; stores the server's epoch with it when given.</summary>
    public void SetCursor(string scope, long cursor, bool reset, string? epoch = null) =>
        _sql.SetCursor.Text(0, scope).Int(1, cursor).Int(2, reset ? 1 : 0).Text(3, epoch).Execute();

    // ---- stale documents ----

    /// <summary>Notes that a document's local value must be rebuilt from its server state once the scope's next pull is done: the server answered a mutation of it without a new revision.</summary>
    public void MarkStale(string scope, string collection, string id) =>
        _sql.MarkStale.Text(0, scope).Text(1, collection).Text(2, id).Execute();

    /// <summary>Removes and returns the documents of a scope noted by <see cref="MarkStale"/>.</summary>
    public List<(string Collection, string Id)> TakeStale(string scope)
    {
        var keys = new List<(string, string)>();
        var statement = _sql.TakeStale.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            keys.Add((statement.String(0)!, statement.String(1)!));
        }

        return keys;
    }

    /// <summary>Forgets the server state and revision of a scope's documents, keeping their local values and pending counts: the server's history they came from is gone.</summary>
    public void ForgetServerStates(string scope) => _sql.ForgetServerStates.Text(0, scope).Execute();

    /// <summary>Persists the clock's last reading when the transaction commits, so the clock never goes back across restarts.</summary>
    public void SaveClock(HybridTimestamp last)
    {
        if (_clock is not { } kept || last > kept)
        {
            _clock = last;
        }
    }

    // ---- conflicts ----

    public ConflictRow? GetConflict(string id)
    {
        var statement = _sql.GetConflict.Text(0, id);
        using var rows = statement.Query();
        return rows.Next() ? new ConflictRow(StoreJson.DeserializeConflict(statement.String(0)!), statement.String(1) == "resolving") : null;
    }

    /// <summary>Stores a conflict record; <paramref name="json"/>, when given, is the record's JSON as received, kept as it is.</summary>
    public void PutConflict(ConflictRecord record, bool resolving, ReadOnlySpan<byte> json = default)
    {
        var statement = _sql.PutConflict
            .Text(0, record.Id)
            .Text(1, record.Scope)
            .Text(2, record.Collection)
            .Text(3, record.DocumentId)
            .Int(4, record.Revision)
            .Text(5, resolving ? "resolving" : "open");
        if (json.IsEmpty)
        {
            statement.Text(6, StoreJson.Serialize(record));
        }
        else
        {
            statement.Text(6, json);
        }

        statement.Execute();
    }

    public void SetConflictResolving(string id, bool resolving) =>
        _sql.SetConflictStatus.Text(0, id).Text(1, resolving ? "resolving" : "open").Execute();

    public bool DeleteConflict(string id) => _sql.DeleteConflict.Text(0, id).Execute() > 0;

    /// <summary>Drops a scope's conflict records that no pending resolution refers to; returns their ids.</summary>
    public List<string> DropSettledConflicts(string scope)
    {
        var ids = new List<string>();
        var statement = _sql.DropSettledConflicts.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            ids.Add(statement.String(0)!);
        }

        return ids;
    }
}

/// <summary>Reads of the store, on a pooled connection.</summary>
internal static class StoreReads
{
    public static List<Mutation> Outbox(SqliteConnection connection, long afterId, long upToId, int limit)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT " + ClientStore.OutboxMutation + " FROM outbox o WHERE o.id > $after AND o.id <= $upTo ORDER BY o.id LIMIT $limit;";
        command.Parameters.AddWithValue("$after", afterId);
        command.Parameters.AddWithValue("$upTo", upToId);
        command.Parameters.AddWithValue("$limit", limit);
        var result = new List<Mutation>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(StoreJson.DeserializeMutation(reader.GetString(0)));
        }

        return result;
    }

    /// <summary>Reads outbox rows with their mutations as stored, the JSON the protocol sends.</summary>
    public static List<OutboxRow> OutboxRows(SqliteConnection connection, long afterId, long upToId, int limit)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT o.id, o.scope, o.collection, o.doc, o.conflict_id, " + ClientStore.OutboxMutation + " FROM outbox o WHERE o.id > $after AND o.id <= $upTo ORDER BY o.id LIMIT $limit;";
        command.Parameters.AddWithValue("$after", afterId);
        command.Parameters.AddWithValue("$upTo", upToId);
        command.Parameters.AddWithValue("$limit", limit);
        var result = new List<OutboxRow>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            // The mutation's UTF-8 text as stored, for the push body: no round trip through a .NET string.
            result.Add(new OutboxRow(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetFieldValue<byte[]>(5)));
        }

        return result;
    }

    public static long LastOutboxId(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(id), 0) FROM outbox;";
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    public static long OutboxCount(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM outbox;";
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    public static long Cursor(SqliteConnection connection, string scope) => CursorAndEpoch(connection, scope).Cursor;

    /// <summary>Reads a scope's cursor and the epoch of the server store it belongs to (<see langword="null"/> when none is known).</summary>
    public static (long Cursor, string? Epoch) CursorAndEpoch(SqliteConnection connection, string scope)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT cursor, epoch FROM cursors WHERE scope = $s;";
        command.Parameters.AddWithValue("$s", scope);
        using var reader = command.ExecuteReader();
        return reader.Read() ? (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1)) : (0, null);
    }

    public static bool HasStale(SqliteConnection connection, string scope)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT EXISTS (SELECT 1 FROM stale WHERE scope = $s);";
        command.Parameters.AddWithValue("$s", scope);
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) != 0;
    }

    public static string? LocalValue(SqliteConnection connection, string scope, string collection, string id)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT local_value FROM documents WHERE scope = $s AND collection = $c AND id = $i;";
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$i", id);
        return command.ExecuteScalar() as string;
    }

    public static List<ConflictRow> Conflicts(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT record, status FROM conflicts ORDER BY scope, revision, id;";
        var result = new List<ConflictRow>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new ConflictRow(StoreJson.DeserializeConflict(reader.GetString(0)), reader.GetString(1) == "resolving"));
        }

        return result;
    }
}
