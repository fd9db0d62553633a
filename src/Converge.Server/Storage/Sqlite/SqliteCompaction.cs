using System.Text.Json;
using Converge.Protocol.Messages;
using Converge.Storage;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The embedded store's compaction: removes old tombstones and resolved conflicts, moves what stays above the raised min valid cursor, and removes unused client progress records.</summary>
/// <remarks>Batches keep each write transaction short, so pushes are never held up for long.</remarks>
internal sealed class SqliteCompaction(SqliteSyncStore store)
{
    private const int CompactionBatchSize = 1_000;

    private readonly SqliteSyncStore _store = store;

    public async Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken)
    {
        var cutoff = removeBefore.ToUnixTimeMilliseconds();
        var clientsCutoff = clientsUnusedBefore.ToUnixTimeMilliseconds();
        var targets = FindCompactionTargets(cutoff);

        return await CompactionLoop.RunAsync(
            targets,
            (scope, from, highest) => _store.WriteAsync(connection => CompactBatch(connection, scope, from, highest, cutoff), cancellationToken),
            () => _store.WriteAsync(connection => RemoveUnusedClients(connection, clientsCutoff), cancellationToken),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes one batch of client progress records last used before the cutoff.</summary>
    /// <returns>How many it removed.</returns>
    private static int RemoveUnusedClients(SqliteConnection connection, long cutoff)
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            DELETE FROM clients WHERE (principal, client) IN (
                SELECT principal, client FROM clients WHERE last_used < $cutoff LIMIT $limit);
            """;
        command.Parameters.AddWithValue("$cutoff", cutoff);
        command.Parameters.AddWithValue("$limit", CompactionLoop.ClientBatchSize);
        return command.ExecuteNonQuery();
    }

    /// <summary>Finds, per scope, the highest revision of a tombstone or resolved conflict older than the cutoff.</summary>
    private List<(string Scope, long Highest)> FindCompactionTargets(long cutoff)
    {
        using var connection = _store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT scope, max(rev) FROM (
                SELECT scope, rev FROM documents WHERE deleted = 1 AND deleted_at < $cutoff
                UNION ALL
                SELECT scope, rev FROM conflicts WHERE status = 1 AND resolved_at < $cutoff)
            GROUP BY scope ORDER BY scope;
            """;
        command.Parameters.AddWithValue("$cutoff", cutoff);
        using var reader = command.ExecuteReader();
        var targets = new List<(string, long)>();
        while (reader.Read())
        {
            targets.Add((reader.GetString(0), reader.GetInt64(1)));
        }

        return targets;
    }


    /// <summary>
    /// Walks the next items of a scope up to <paramref name="highest"/>, in revision order: removes the old tombstones and
    /// resolved conflicts, moves every other item to a new revision, and raises the min valid cursor to the highest
    /// revision removed.
    /// </summary>
    /// <remarks>
    /// Moving the items that stay keeps every item of a scope above its min valid cursor, so a download from the start of
    /// the scope (a new client, or a reset) never holds a cursor below it and never gets reset again half-way.
    /// </remarks>
    private static CompactionBatch CompactBatch(SqliteConnection connection, string scope, long from, long highest, long cutoff)
    {
        var (revision, minValid) = SqliteSql.ReadScope(connection, scope);

        var items = new List<(long Rev, bool IsDocument, long RowId, bool Removable, byte[] Json)>();
        ReadItems(connection, "SELECT rev, rowid, coalesce(deleted = 1 AND deleted_at < $cutoff, 0), state FROM documents WHERE scope = $scope AND rev > $from AND rev <= $highest ORDER BY rev LIMIT $limit;", true);
        ReadItems(connection, "SELECT rev, rowid, coalesce(status = 1 AND resolved_at < $cutoff, 0), record FROM conflicts WHERE scope = $scope AND rev > $from AND rev <= $highest ORDER BY rev LIMIT $limit;", false);
        items.Sort((a, b) => a.Rev.CompareTo(b.Rev));
        var done = items.Count <= CompactionBatchSize;
        if (!done)
        {
            items.RemoveRange(CompactionBatchSize, items.Count - CompactionBatchSize);
        }

        int tombstones = 0, conflicts = 0, moved = 0;
        using var deleteDocument = Prepare(connection, "DELETE FROM documents WHERE rowid = $rowid;", "$rowid");
        using var deleteConflict = Prepare(connection, "DELETE FROM conflicts WHERE rowid = $rowid;", "$rowid");
        using var moveDocument = Prepare(connection, "UPDATE documents SET rev = $rev, state = $json WHERE rowid = $rowid;", "$rowid", "$rev", "$json");
        using var moveConflict = Prepare(connection, "UPDATE conflicts SET rev = $rev, record = $json WHERE rowid = $rowid;", "$rowid", "$rev", "$json");
        foreach (var item in items)
        {
            if (item.Removable)
            {
                var delete = item.IsDocument ? deleteDocument : deleteConflict;
                delete.Parameters[0].Value = item.RowId;
                delete.ExecuteNonQuery();
                minValid = Math.Max(minValid, item.Rev);
                _ = item.IsDocument ? tombstones++ : conflicts++;
                continue;
            }

            var next = ++revision;
            var move = item.IsDocument ? moveDocument : moveConflict;
            move.Parameters[0].Value = item.RowId;
            move.Parameters[1].Value = next;
            move.Parameters[2].Value = item.IsDocument
                ? JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.DocumentState) with { Revision = next }, ProtocolJson.DocumentState)
                : JsonSerializer.SerializeToUtf8Bytes(Deserialize(item.Json, ProtocolJson.ConflictRecord) with { Revision = next }, ProtocolJson.ConflictRecord);
            move.ExecuteNonQuery();
            moved++;
        }

        using (var write = connection.CreateCommand())
        {
            write.CommandText = "UPDATE scopes SET revision = $revision, min_valid = $min WHERE scope = $scope;";
            write.Parameters.AddWithValue("$scope", scope);
            write.Parameters.AddWithValue("$revision", revision);
            write.Parameters.AddWithValue("$min", minValid);
            write.ExecuteNonQuery();
        }

        return new CompactionBatch(tombstones, conflicts, moved, items.Count > 0 ? items[^1].Rev : highest, done);

        void ReadItems(SqliteConnection c, string sql, bool isDocument)
        {
            using var command = c.CreateCommand();
            command.CommandText = sql;
            command.Parameters.AddWithValue("$scope", scope);
            command.Parameters.AddWithValue("$from", from);
            command.Parameters.AddWithValue("$highest", highest);
            command.Parameters.AddWithValue("$cutoff", cutoff);
            command.Parameters.AddWithValue("$limit", CompactionBatchSize + 1);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                items.Add((reader.GetInt64(0), isDocument, reader.GetInt64(1), reader.GetBoolean(2), reader.GetFieldValue<byte[]>(3)));
            }
        }
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        return command;
    }

    private static T Deserialize<T>(byte[] json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.Deserialize(json, typeInfo) ?? throw new InvalidOperationException($"A stored {typeof(T).Name} is null.");
}
