using System.Text.Json;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Storage.Sqlite;

/// <summary>Statements and row reads that the embedded store's parts share.</summary>
internal static class SqliteSql
{
    /// <summary>Reads a scope's revision counter and min valid cursor, both 0 for a scope never written.</summary>
    public static (long Revision, long MinValid) ReadScope(SqliteConnection connection, string scope)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT revision, min_valid FROM scopes WHERE scope = $scope;";
        command.Parameters.AddWithValue("$scope", scope);
        using var reader = command.ExecuteReader();
        return reader.Read() ? (reader.GetInt64(0), reader.GetInt64(1)) : (0, 0);
    }

    /// <summary>Reads a stored conflict record from a column of a row.</summary>
    public static ConflictRecord ReadConflict(SqliteDataReader reader, int ordinal) =>
        JsonSerializer.Deserialize(reader.GetFieldValue<byte[]>(ordinal), ProtocolJson.ConflictRecord)
        ?? throw new InvalidOperationException("A stored conflict record is null.");

    /// <summary>Runs a statement that returns nothing.</summary>
    public static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Runs a statement and returns the first column of its first row.</summary>
    public static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
