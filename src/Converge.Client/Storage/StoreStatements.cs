using Converge.Sqlite;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Storage;

/// <summary>Every statement a write transaction runs, prepared once for the life of the store.</summary>
internal sealed class StoreStatements : IDisposable
{
    private readonly List<NativeStatement> _all = [];

    public StoreStatements(SqliteConnection connection)
    {
        NativeStatement Create(string sql, params string[] parameters)
        {
            var statement = new NativeStatement(connection, sql, parameters);
            _all.Add(statement);
            return statement;
        }

        Begin = Create("BEGIN IMMEDIATE;");
        Commit = Create("COMMIT;");
        GetDocument = Create("SELECT server_state, server_revision, local_value, local_hlc, pending FROM documents WHERE scope = $s AND collection = $c AND id = $i;", "$s", "$c", "$i");
        GetDocumentBrief = Create("SELECT server_revision, local_value, pending FROM documents WHERE scope = $s AND collection = $c AND id = $i;", "$s", "$c", "$i");
        PutDocument = Create(
            """
            INSERT INTO documents (scope, collection, id, server_state, server_revision, local_value, local_hlc, pending, put_id)
            VALUES ($s, $c, $i, $state, $rev, $value, $hlc, $pending, NULL)
            ON CONFLICT (scope, collection, id) DO UPDATE SET
                server_state = excluded.server_state, server_revision = excluded.server_revision,
                local_value = excluded.local_value, local_hlc = excluded.local_hlc, pending = excluded.pending, put_id = NULL;
            """,
            "$s",
            "$c",
            "$i",
            "$state",
            "$rev",
            "$value",
            "$hlc",
            "$pending");
        InsertPut = Create(
            "INSERT INTO documents (scope, collection, id, local_value, local_hlc, pending, put_id) VALUES ($s, $c, $i, $value, $hlc, 1, $put) ON CONFLICT (scope, collection, id) DO NOTHING;",
            "$s",
            "$c",
            "$i",
            "$value",
            "$hlc",
            "$put");
        DeleteDocument = Create("DELETE FROM documents WHERE scope = $s AND collection = $c AND id = $i;", "$s", "$c", "$i");
        SettleBatch = Create(
            """
            UPDATE documents SET pending = max(documents.pending - answered.n, 0)
            FROM (SELECT scope, collection, doc, count(*) AS n FROM outbox WHERE id > $after AND id <= $last GROUP BY scope, collection, doc) AS answered
            WHERE documents.scope = answered.scope AND documents.collection = answered.collection AND documents.id = answered.doc
            RETURNING documents.scope, documents.collection, documents.id, documents.pending, documents.server_state IS NULL AND documents.local_value IS NULL;
            """,
            "$after",
            "$last");
        DropSettledDocuments = Create("DELETE FROM documents WHERE scope = $s AND pending = 0 RETURNING collection, id, local_value;", "$s");
        WriteNextMutationId = Create("UPDATE meta SET value = CAST(max(CAST(value AS INTEGER), $v) AS TEXT) WHERE key = 'next_mutation_id';", "$v");
        AddToOutbox = Create("INSERT INTO outbox (id, scope, collection, doc, conflict_id, mutation) VALUES ($id, $s, $c, $d, $conflict, $m);", "$id", "$s", "$c", "$d", "$conflict", "$m");
        AddPutToOutbox = Create("INSERT INTO outbox (id, scope, collection, doc) VALUES ($id, $s, $c, $d);", "$id", "$s", "$c", "$d");
        RemoveFromOutbox = Create("DELETE FROM outbox WHERE id > $after AND id <= $last;", "$after", "$last");
        PendingMutations = Create(
            "SELECT id, mutation FROM outbox WHERE scope = $s AND collection = $c AND doc = $d AND mutation IS NOT NULL "
            + "UNION ALL SELECT d.put_id, " + ClientStore.ImplicitPut + " FROM documents d WHERE d.scope = $s AND d.collection = $c AND d.id = $d AND d.put_id IS NOT NULL "
            + "AND EXISTS (SELECT 1 FROM outbox WHERE outbox.id = d.put_id AND outbox.mutation IS NULL) ORDER BY 1;",
            "$s",
            "$c",
            "$d");
        HasPendingResolve = Create("SELECT EXISTS (SELECT 1 FROM outbox WHERE conflict_id = $id);", "$id");
        SetCursor = Create(
            """
            INSERT INTO cursors (scope, cursor, epoch) VALUES ($s, $c, $epoch)
            ON CONFLICT (scope) DO UPDATE SET
                cursor = CASE WHEN $reset THEN excluded.cursor ELSE max(cursor, excluded.cursor) END,
                epoch = coalesce(excluded.epoch, cursors.epoch);
            """,
            "$s",
            "$c",
            "$reset",
            "$epoch");
        MarkStale = Create("INSERT OR IGNORE INTO stale (scope, collection, id) VALUES ($s, $c, $i);", "$s", "$c", "$i");
        TakeStale = Create("DELETE FROM stale WHERE scope = $s RETURNING collection, id;", "$s");
        ForgetServerStates = Create("UPDATE documents SET server_state = NULL, server_revision = 0 WHERE scope = $s AND server_state IS NOT NULL;", "$s");
        SaveClock = Create("INSERT INTO meta (key, value) VALUES ('clock', $v) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE excluded.value > meta.value;", "$v");
        GetConflict = Create("SELECT record, status FROM conflicts WHERE id = $id;", "$id");
        PutConflict = Create(
            """
            INSERT INTO conflicts (id, scope, collection, doc, revision, status, record) VALUES ($id, $s, $c, $d, $rev, $status, $record)
            ON CONFLICT (id) DO UPDATE SET scope = excluded.scope, collection = excluded.collection, doc = excluded.doc,
                revision = excluded.revision, status = excluded.status, record = excluded.record;
            """,
            "$id",
            "$s",
            "$c",
            "$d",
            "$rev",
            "$status",
            "$record");
        SetConflictStatus = Create("UPDATE conflicts SET status = $status WHERE id = $id;", "$id", "$status");
        DeleteConflict = Create("DELETE FROM conflicts WHERE id = $id;", "$id");
        DropSettledConflicts = Create("DELETE FROM conflicts WHERE scope = $s AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.conflict_id = conflicts.id) RETURNING id;", "$s");
    }

    /// <summary>Gets the writer of outbox mutations.</summary>
    public MutationJson Mutations { get; } = new();

    public NativeStatement Begin { get; }

    public NativeStatement Commit { get; }

    public NativeStatement GetDocument { get; }

    public NativeStatement GetDocumentBrief { get; }

    public NativeStatement PutDocument { get; }

    /// <summary>Gets the statement that inserts the row of a new document whose put it holds; it changes nothing when the document has a row.</summary>
    public NativeStatement InsertPut { get; }

    public NativeStatement DeleteDocument { get; }

    public NativeStatement SettleBatch { get; }

    public NativeStatement DropSettledDocuments { get; }

    public NativeStatement WriteNextMutationId { get; }

    public NativeStatement AddToOutbox { get; }

    /// <summary>Gets the statement that adds a new document's put to the outbox without its JSON, which the document's row holds.</summary>
    public NativeStatement AddPutToOutbox { get; }

    public NativeStatement RemoveFromOutbox { get; }

    public NativeStatement PendingMutations { get; }

    public NativeStatement HasPendingResolve { get; }

    public NativeStatement SetCursor { get; }

    public NativeStatement MarkStale { get; }

    public NativeStatement TakeStale { get; }

    public NativeStatement ForgetServerStates { get; }

    public NativeStatement SaveClock { get; }

    public NativeStatement GetConflict { get; }

    public NativeStatement PutConflict { get; }

    public NativeStatement SetConflictStatus { get; }

    public NativeStatement DeleteConflict { get; }

    public NativeStatement DropSettledConflicts { get; }

    public void Dispose()
    {
        foreach (var statement in _all)
        {
            statement.Dispose();
        }

        _all.Clear();
    }
}
