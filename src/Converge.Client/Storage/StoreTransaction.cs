using System.Globalization;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Storage;

/// <summary>A stored document row.</summary>
internal sealed record DocumentRow(
    string Scope,
    string Collection,
    string Id,
    DocumentState? ServerState,
    long ServerRevision,
    string? LocalValue,
    string? LocalTimestamps,
    int Pending);

/// <summary>A stored conflict row.</summary>
internal sealed record ConflictRow(ConflictRecord Record, bool Resolving);

/// <summary>The operations of one write transaction, on the store's write connection.</summary>
internal readonly struct StoreTransaction
{
    private readonly ClientStore _store;

    public StoreTransaction(ClientStore store) => _store = store;

    /// <summary>Runs a statement that takes no parameters, such as an index's DDL.</summary>
    public int Execute(string sql)
    {
        return _store.Execute(sql);
    }

    // ---- documents ----

    public DocumentRow? GetDocument(string scope, string collection, string id)
    {
        var command = _store.Command("SELECT server_state, server_revision, local_value, local_hlc, pending FROM documents WHERE scope = $s AND collection = $c AND id = $i;");
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$i", id);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        return new DocumentRow(
            scope,
            collection,
            id,
            StoreJson.DeserializeState(reader.IsDBNull(0) ? null : reader.GetString(0)),
            reader.GetInt64(1),
            reader.IsDBNull(2) ? null : reader.GetString(2),
            reader.IsDBNull(3) ? null : reader.GetString(3),
            reader.GetInt32(4));
    }

    /// <summary>Writes a document row, or removes it when it holds nothing: no server state, no value, nothing pending.</summary>
    public void PutDocument(string scope, string collection, string id, DocumentState? server, LocalView view, int pending)
    {
        if (server is null && view.Value is null && pending == 0)
        {
            DeleteDocument(scope, collection, id);
            return;
        }

        var command = _store.Command("""
            INSERT INTO documents (scope, collection, id, server_state, server_revision, local_value, local_hlc, pending)
            VALUES ($s, $c, $i, $state, $rev, $value, $hlc, $pending)
            ON CONFLICT (scope, collection, id) DO UPDATE SET
                server_state = excluded.server_state, server_revision = excluded.server_revision,
                local_value = excluded.local_value, local_hlc = excluded.local_hlc, pending = excluded.pending;
            """);
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$i", id);
        command.Parameters.AddWithValue("$state", server is null ? DBNull.Value : StoreJson.Serialize(server));
        command.Parameters.AddWithValue("$rev", server?.Revision ?? 0);
        command.Parameters.AddWithValue("$value", (object?)view.Value?.ToJson() ?? DBNull.Value);
        command.Parameters.AddWithValue("$hlc", (object?)view.TimestampsJson() ?? DBNull.Value);
        command.Parameters.AddWithValue("$pending", pending);
        command.ExecuteNonQuery();
    }

    public void DeleteDocument(string scope, string collection, string id)
    {
        var command = _store.Command("DELETE FROM documents WHERE scope = $s AND collection = $c AND id = $i;");
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$i", id);
        command.ExecuteNonQuery();
    }

    /// <summary>Drops a scope's documents that have no pending mutations; returns the dropped documents that had a value, with it.</summary>
    public List<(string Collection, string Id, string LocalValue)> DropSettledDocuments(string scope)
    {
        var dropped = new List<(string, string, string)>();
        var command = _store.Command("DELETE FROM documents WHERE scope = $s AND pending = 0 RETURNING collection, id, local_value;");
        command.Parameters.AddWithValue("$s", scope);
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            if (!reader.IsDBNull(2))
            {
                dropped.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
            }
        }

        return dropped;
    }

    // ---- outbox ----

    /// <summary>Takes the next mutation id: per client, increasing by one, never reused even after the outbox drains.</summary>
    public long NextMutationId()
    {
        var command = _store.Command("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'next_mutation_id' RETURNING CAST(value AS INTEGER) - 1;");
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    public void AddToOutbox(Mutation mutation)
    {
        var command = _store.Command("INSERT INTO outbox (id, scope, collection, doc, conflict_id, mutation) VALUES ($id, $s, $c, $d, $conflict, $m);");
        command.Parameters.AddWithValue("$id", mutation.Id);
        command.Parameters.AddWithValue("$s", mutation.Scope);
        command.Parameters.AddWithValue("$c", mutation.Collection);
        command.Parameters.AddWithValue("$d", mutation.DocumentId);
        command.Parameters.AddWithValue("$conflict", (object?)mutation.ConflictId ?? DBNull.Value);
        command.Parameters.AddWithValue("$m", StoreJson.Serialize(mutation));
        command.ExecuteNonQuery();
    }

    public void RemoveFromOutbox(long id)
    {
        var command = _store.Command("DELETE FROM outbox WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        command.ExecuteNonQuery();
    }

    /// <summary>Reads a document's pending mutations, in outbox order.</summary>
    public List<Mutation> PendingMutations(string scope, string collection, string id)
    {
        var command = _store.Command("SELECT mutation FROM outbox WHERE scope = $s AND collection = $c AND doc = $d ORDER BY id;");
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$d", id);
        var result = new List<Mutation>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(StoreJson.DeserializeMutation(reader.GetString(0)));
        }

        return result;
    }

    public bool HasPendingResolve(string conflictId)
    {
        var command = _store.Command("SELECT EXISTS (SELECT 1 FROM outbox WHERE conflict_id = $id);");
        command.Parameters.AddWithValue("$id", conflictId);
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) != 0;
    }

    // ---- cursors and clock ----

    public long GetCursor(string scope)
    {
        var command = _store.Command("SELECT cursor FROM cursors WHERE scope = $s;");
        command.Parameters.AddWithValue("$s", scope);
        return command.ExecuteScalar() is long cursor ? cursor : 0;
    }

    /// <summary>Moves a scope's cursor forward (never back, so pages from two sources may interleave), or anywhere on a reset.</summary>
    public void SetCursor(string scope, long cursor, bool reset)
    {
        var command = _store.Command("""
            INSERT INTO cursors (scope, cursor) VALUES ($s, $c)
            ON CONFLICT (scope) DO UPDATE SET cursor = CASE WHEN $reset THEN excluded.cursor ELSE max(cursor, excluded.cursor) END;
            """);
        command.Parameters.AddWithValue("$s", scope);
        command.Parameters.AddWithValue("$c", cursor);
        command.Parameters.AddWithValue("$reset", reset);
        command.ExecuteNonQuery();
    }

    /// <summary>Persists the clock's last reading, so the clock never goes back across restarts.</summary>
    public void SaveClock(HybridTimestamp last)
    {
        var command = _store.Command("INSERT INTO meta (key, value) VALUES ('clock', $v) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE excluded.value > meta.value;");
        command.Parameters.AddWithValue("$v", last.ToString());
        command.ExecuteNonQuery();
    }

    // ---- conflicts ----

    public ConflictRow? GetConflict(string id)
    {
        var command = _store.Command("SELECT record, status FROM conflicts WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        return reader.Read() ? new ConflictRow(StoreJson.DeserializeConflict(reader.GetString(0)), reader.GetString(1) == "resolving") : null;
    }

    public void PutConflict(ConflictRecord record, bool resolving)
    {
        var command = _store.Command("""
            INSERT INTO conflicts (id, scope, collection, doc, revision, status, record) VALUES ($id, $s, $c, $d, $rev, $status, $record)
            ON CONFLICT (id) DO UPDATE SET scope = excluded.scope, collection = excluded.collection, doc = excluded.doc,
                revision = excluded.revision, status = excluded.status, record = excluded.record;
            """);
        command.Parameters.AddWithValue("$id", record.Id);
        command.Parameters.AddWithValue("$s", record.Scope);
        command.Parameters.AddWithValue("$c", record.Collection);
        command.Parameters.AddWithValue("$d", record.DocumentId);
        command.Parameters.AddWithValue("$rev", record.Revision);
        command.Parameters.AddWithValue("$status", resolving ? "resolving" : "open");
        command.Parameters.AddWithValue("$record", StoreJson.Serialize(record));
        command.ExecuteNonQuery();
    }

    public void SetConflictResolving(string id, bool resolving)
    {
        var command = _store.Command("UPDATE conflicts SET status = $status WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$status", resolving ? "resolving" : "open");
        command.ExecuteNonQuery();
    }

    public bool DeleteConflict(string id)
    {
        var command = _store.Command("DELETE FROM conflicts WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteNonQuery() > 0;
    }

    /// <summary>Drops a scope's conflict records that no pending resolution refers to; returns their ids.</summary>
    public List<string> DropSettledConflicts(string scope)
    {
        var command = _store.Command("DELETE FROM conflicts WHERE scope = $s AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.conflict_id = conflicts.id) RETURNING id;");
        command.Parameters.AddWithValue("$s", scope);
        var ids = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            ids.Add(reader.GetString(0));
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
        command.CommandText = "SELECT mutation FROM outbox WHERE id > $after AND id <= $upTo ORDER BY id LIMIT $limit;";
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

    public static long Cursor(SqliteConnection connection, string scope)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT cursor FROM cursors WHERE scope = $s;";
        command.Parameters.AddWithValue("$s", scope);
        return command.ExecuteScalar() is long cursor ? cursor : 0;
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
