using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Tests.Storage;

/// <summary>A write transaction that fails, in its work or in its commit, leaves the store usable and its own error visible.</summary>
public sealed class StoreTransactionTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task A_commit_that_fails_with_the_transaction_still_open_is_rolled_back_and_the_next_write_works()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        // A deferred foreign key makes COMMIT fail and leaves SQLite's transaction open, as a busy commit can.
        client.Store.Execute("PRAGMA foreign_keys=ON;");
        await client.Store.WriteAsync(tx => tx.Execute("CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"), default);
        var error = await Assert.ThrowsAsync<SqliteException>(() => client.Store.WriteAsync(
            tx =>
            {
                client.Writes.Write(tx, "user:alice", "docs", "lost", Protocol.Messages.MutationKind.Put, new Client.Storage.JsonFields { ["n"] = System.Text.Json.JsonDocument.Parse("1").RootElement }, null, null);
                return tx.Execute("INSERT INTO child (p) VALUES (42);");
            },
            default));
        Assert.Equal(19, error.SqliteErrorCode); // SQLITE_CONSTRAINT

        await docs.PutAsync("a", new JsonObject { ["n"] = 2 });

        Assert.Equal(0, Inspect.Count(client, "child"));
        Assert.Null(Inspect.LocalJson(client, "docs", "lost"));
        Assert.Equal([1L], Inspect.Outbox(client).Select(m => m.Id));
    }

    [Fact]
    public async Task When_sqlite_rolled_back_by_itself_the_error_that_failed_the_transaction_surfaces()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        // As after a full disk or an I/O error: SQLite has already ended the transaction when the error reaches the store.
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => client.Store.WriteAsync<int>(
            tx =>
            {
                tx.Execute("ROLLBACK;");
                throw new InvalidOperationException("disk full");
            },
            default));
        Assert.Equal("disk full", error.Message);

        await docs.PutAsync("a", new JsonObject { ["n"] = 1 });
        Assert.Equal("""{"n":1}""", Inspect.LocalJson(client, "docs", "a"));
    }

    [Fact]
    public async Task A_version_1_store_is_upgraded_at_open_and_keeps_its_cursors_and_outbox()
    {
        await using (var client = await _folder.OpenAsync())
        {
            await client.Collection<JsonObject>("docs").PutAsync("a", new JsonObject { ["n"] = 1 });
        }

        using (var connection = new SqliteConnection($"Data Source={_folder.Database};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = """
                DROP TABLE stale;
                ALTER TABLE cursors DROP COLUMN epoch;
                INSERT INTO cursors (scope, cursor) VALUES ('user:alice', 7);
                UPDATE meta SET value = '1' WHERE key = 'schema_version';
                """;
            command.ExecuteNonQuery();
        }

        await using (var client = await _folder.OpenAsync())
        {
            Assert.Equal(["3"], Inspect.Query(client, "SELECT value FROM meta WHERE key = 'schema_version';"));
            Assert.Equal(["user:alice|7|NULL"], Inspect.Query(client, "SELECT scope, cursor, epoch FROM cursors;"));
            Assert.Equal(0, Inspect.Count(client, "stale"));
            Assert.Equal(1, await client.GetPendingCountAsync());
        }
    }

    [Fact]
    public async Task A_version_2_store_is_upgraded_at_open_and_keeps_its_outbox()
    {
        using (var connection = new SqliteConnection($"Data Source={_folder.Database};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                CREATE TABLE documents (scope TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, server_state TEXT NULL,
                    server_revision INTEGER NOT NULL DEFAULT 0, local_value TEXT NULL, local_hlc TEXT NULL, pending INTEGER NOT NULL DEFAULT 0);
                CREATE UNIQUE INDEX documents_key ON documents (scope, collection, id);
                CREATE TABLE outbox (id INTEGER NOT NULL PRIMARY KEY, scope TEXT NOT NULL, collection TEXT NOT NULL, doc TEXT NOT NULL,
                    conflict_id TEXT NULL, mutation TEXT NOT NULL);
                CREATE INDEX outbox_document ON outbox (scope, collection, doc, id);
                CREATE INDEX outbox_conflict ON outbox (conflict_id) WHERE conflict_id IS NOT NULL;
                CREATE TABLE cursors (scope TEXT NOT NULL PRIMARY KEY, cursor INTEGER NOT NULL, epoch TEXT NULL) WITHOUT ROWID;
                CREATE TABLE stale (scope TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (scope, collection, id)) WITHOUT ROWID;
                CREATE TABLE conflicts (id TEXT NOT NULL PRIMARY KEY, scope TEXT NOT NULL, collection TEXT NOT NULL, doc TEXT NOT NULL,
                    revision INTEGER NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;
                INSERT INTO meta (key, value) VALUES ('schema_version', '2'), ('replica_id', '00000000000000aa'), ('next_mutation_id', '1');
                INSERT INTO documents (scope, collection, id, local_value, local_hlc, pending)
                    VALUES ('user:alice', 'docs', 'a', '{"n":1}', '"0191a2b3c4d5-0003-00000000000000aa"', 1);
                INSERT INTO outbox (id, scope, collection, doc, mutation) VALUES (1, 'user:alice', 'docs', 'a',
                    '{"id":1,"scope":"user:alice","collection":"docs","doc":"a","op":"put","hlc":"0191a2b3c4d5-0003-00000000000000aa","base":0,"fields":{"n":1}}');
                """;
            command.ExecuteNonQuery();
        }

        await using var client = await _folder.OpenAsync();
        Assert.Equal(["3"], Inspect.Query(client, "SELECT value FROM meta WHERE key = 'schema_version';"));
        Assert.Equal(1, await client.GetPendingCountAsync());
        var docs = client.Collection<JsonObject>("docs");
        await docs.PatchAsync("a", new JsonObject { ["m"] = 2 });
        await docs.PutAsync("b", new JsonObject { ["k"] = 3 });
        Assert.Equal(3, await client.GetPendingCountAsync());
        Assert.Equal(["1|put", "2|patch", "3|put"], Inspect.Query(client, "SELECT id, json_extract(coalesce(mutation, '{\"op\":\"put\"}'), '$.op') FROM outbox ORDER BY id;"));
        var pending = await client.Store.WriteAsync(tx => tx.Outbox.Pending("user:alice", "docs", "a"), default);
        Assert.Equal([1L, 2L], pending.Select(m => m.Id));
    }

    [Fact]
    public async Task A_new_documents_put_is_kept_in_its_row_until_a_later_write_changes_it()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("a", new JsonObject { ["n"] = 1 });
        Assert.Equal(["1|NULL"], Inspect.Query(client, "SELECT id, mutation FROM outbox;"));
        var put = Assert.Single(await client.Store.WriteAsync(tx => tx.Outbox.Pending("user:alice", "docs", "a"), default));
        Assert.Equal(1, put.Fields!["n"].GetInt32());

        await docs.PatchAsync("a", new JsonObject { ["n"] = 2 });
        var pending = await client.Store.WriteAsync(tx => tx.Outbox.Pending("user:alice", "docs", "a"), default);
        Assert.Equal([1L, 2L], pending.Select(m => m.Id));
        Assert.Equal(1, pending[0].Fields!["n"].GetInt32());
        Assert.Equal(put.Hlc, pending[0].Hlc);
        Assert.Equal(["NULL"], Inspect.Query(client, "SELECT put_id FROM documents;"));
    }
}
