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
                client.Write(tx, "user:alice", "docs", "lost", Protocol.Messages.MutationKind.Put, new Client.Storage.JsonFields { ["n"] = System.Text.Json.JsonDocument.Parse("1").RootElement }, null, null);
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
            Assert.Equal(["2"], Inspect.Query(client, "SELECT value FROM meta WHERE key = 'schema_version';"));
            Assert.Equal(["user:alice|7|NULL"], Inspect.Query(client, "SELECT scope, cursor, epoch FROM cursors;"));
            Assert.Equal(0, Inspect.Count(client, "stale"));
            Assert.Equal(1, await client.GetPendingCountAsync());
        }
    }
}
