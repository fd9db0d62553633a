using System.Globalization;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Storage;

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
