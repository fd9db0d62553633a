using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client.Storage;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Tests.Infrastructure;

/// <summary>A temp folder with a client's SQLite file; deleted at the end.</summary>
public sealed class TestFolder : IDisposable
{
    public TestFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "converge-client-tests", Guid.NewGuid().ToString("n"));

    public string Database => System.IO.Path.Combine(Path, "client.db");

    public ConvergeClientOptions Options(Uri? server = null, params string[] scopes)
    {
        var options = new ConvergeClientOptions { DatabasePath = Database, ServerUrl = server };
        foreach (var scope in scopes.Length == 0 ? ["user:alice", "team:42"] : scopes)
        {
            options.Scopes.Add(scope);
        }

        return options;
    }

    public Task<ConvergeClient> OpenAsync(Uri? server = null, Action<ConvergeClientOptions>? configure = null)
    {
        var options = Options(server);
        configure?.Invoke(options);
        return ConvergeClient.OpenAsync(options);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Looks into a client's store through its internal API.</summary>
public static class Inspect
{
    public static List<Mutation> Outbox(ConvergeClient client)
    {
        using var connection = client.Store.OpenRead();
        return StoreReads.Outbox(connection, 0, long.MaxValue, 100_000);
    }

    public static long Cursor(ConvergeClient client, string scope)
    {
        using var connection = client.Store.OpenRead();
        return StoreReads.Cursor(connection, scope);
    }

    public static string? LocalJson(ConvergeClient client, string collection, string id, string? scope = null)
    {
        using var connection = client.Store.OpenRead();
        return StoreReads.LocalValue(connection, scope ?? client.DefaultScope, collection, id);
    }

    public static JsonObject? Local(ConvergeClient client, string collection, string id, string? scope = null) =>
        LocalJson(client, collection, id, scope) is { } json ? JsonNode.Parse(json)!.AsObject() : null;

    public static (string? ServerState, long Revision, int Pending)? Row(ConvergeClient client, string collection, string id, string? scope = null)
    {
        using var connection = client.Store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT server_state, server_revision, pending FROM documents WHERE scope = $s AND collection = $c AND id = $i;";
        command.Parameters.AddWithValue("$s", scope ?? client.DefaultScope);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$i", id);
        using var reader = command.ExecuteReader();
        return reader.Read() ? (reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt64(1), reader.GetInt32(2)) : null;
    }

    public static long Count(ConvergeClient client, string table)
    {
        using var connection = client.Store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table};";
        return (long)command.ExecuteScalar()!;
    }

    public static List<string> Query(ConvergeClient client, string sql)
    {
        using var connection = client.Store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        var rows = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "NULL" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }
}

/// <summary>Builds server-side document states, as a server would send them.</summary>
public static class Server
{
    public const ulong OtherReplica = 0x00000000000000b0;

    public static readonly HybridTimestamp Stamp = new(1_700_000_000_000, 0, OtherReplica);

    public static JsonElement Json(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    /// <summary>A live state whose fields are those of <paramref name="json"/>, all written at <paramref name="revision"/>.</summary>
    public static DocumentState State(string json, long revision, HybridTimestamp? hlc = null, ulong writer = OtherReplica)
    {
        var fields = new Dictionary<string, FieldState>(StringComparer.Ordinal);
        foreach (var property in Json(json).EnumerateObject())
        {
            fields[property.Name] = FieldState.Written(property.Value.Clone(), hlc ?? Stamp, revision, writer);
        }

        return new DocumentState { Fields = fields, Revision = revision };
    }

    public static DocumentState Deleted(long revision) => new()
    {
        Deleted = true,
        DeletedHlc = Stamp,
        DeletedRevision = revision,
        DeletedBy = OtherReplica,
        Revision = revision,
    };

    public static DocumentChange Change(string collection, string id, DocumentState state) =>
        new() { Collection = collection, DocumentId = id, State = state };

    public static ConflictRecord Conflict(string id, string scope, string collection, string doc, long revision, params (string Name, string Server, string Client)[] fields) => new()
    {
        Id = id,
        Scope = scope,
        Collection = collection,
        DocumentId = doc,
        Revision = revision,
        Status = ConflictStatus.Open,
        ClientId = ReplicaId.Format(0xc1),
        MutationId = 7,
        CreatedAt = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000),
        Fields = fields.Select(f => new ConflictField
        {
            Name = f.Name,
            Server = FieldState.Written(Json(f.Server), Stamp, revision, OtherReplica),
            Client = FieldState.Written(Json(f.Client), new HybridTimestamp(1_700_000_000_001, 0, 0xc1), revision, 0xc1),
        }).ToList(),
    };

    /// <summary>Applies a page as a pull would.</summary>
    public static Task ApplyAsync(ConvergeClient client, long cursor, params DocumentChange[] changes) =>
        client.Pages.ApplyAsync(client.DefaultScope, changes, null, cursor, reset: false, CancellationToken.None);
}

/// <summary>Awaits with a bound, so a missing event fails the test instead of hanging it.</summary>
public static class Wait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static async Task<T> For<T>(Task<T> task) => await task.WaitAsync(Timeout);

    public static async Task For(Task task) => await task.WaitAsync(Timeout);

    public static async Task<T> For<T>(ValueTask<T> task) => await task.AsTask().WaitAsync(Timeout);
}
