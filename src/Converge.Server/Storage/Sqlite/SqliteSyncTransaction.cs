using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The writer's statements, prepared once and reused by every transaction.</summary>
internal sealed class WriterCommands : IDisposable
{
    private readonly List<SqliteCommand> _all = [];

    public WriterCommands(SqliteConnection connection)
    {
        Begin = Create(connection, "BEGIN IMMEDIATE;");
        Commit = Create(connection, "COMMIT;");
        Rollback = Create(connection, "ROLLBACK;");
        ReadClient = Create(connection, "SELECT last_mutation, last_hlc FROM clients WHERE principal = $principal AND client = $client;", ("$principal", SqliteType.Text), ("$client", SqliteType.Text));
        WriteClient = Create(
            connection,
            "INSERT INTO clients (principal, client, last_mutation, last_hlc) VALUES ($principal, $client, $last, $hlc) ON CONFLICT (principal, client) DO UPDATE SET last_mutation = excluded.last_mutation, last_hlc = excluded.last_hlc;",
            ("$principal", SqliteType.Text),
            ("$client", SqliteType.Text),
            ("$last", SqliteType.Integer),
            ("$hlc", SqliteType.Blob));
        ReadScope = Create(connection, "SELECT revision FROM scopes WHERE scope = $scope;", ("$scope", SqliteType.Text));
        WriteScope = Create(
            connection,
            "INSERT INTO scopes (scope, revision) VALUES ($scope, $revision) ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision;",
            ("$scope", SqliteType.Text),
            ("$revision", SqliteType.Integer));
        ReadDocument = Create(
            connection,
            "SELECT state FROM documents WHERE scope = $scope AND collection = $collection AND id = $id;",
            ("$scope", SqliteType.Text),
            ("$collection", SqliteType.Text),
            ("$id", SqliteType.Text));
        WriteDocument = Create(
            connection,
            """
            INSERT INTO documents (scope, collection, id, rev, deleted, deleted_at, state) VALUES ($scope, $collection, $id, $rev, $deleted, $deleted_at, $state)
            ON CONFLICT (scope, collection, id) DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, deleted_at = excluded.deleted_at, state = excluded.state;
            """,
            ("$scope", SqliteType.Text),
            ("$collection", SqliteType.Text),
            ("$id", SqliteType.Text),
            ("$rev", SqliteType.Integer),
            ("$deleted", SqliteType.Integer),
            ("$deleted_at", SqliteType.Integer),
            ("$state", SqliteType.Blob));
        ReadConflict = Create(connection, "SELECT record FROM conflicts WHERE id = $id;", ("$id", SqliteType.Text));
        WriteConflict = Create(
            connection,
            """
            INSERT INTO conflicts (id, scope, collection, doc, rev, status, record, created_at, resolved_at) VALUES ($id, $scope, $collection, $doc, $rev, $status, $record, $created_at, $resolved_at)
            ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, status = excluded.status, record = excluded.record, resolved_at = excluded.resolved_at;
            """,
            ("$id", SqliteType.Text),
            ("$scope", SqliteType.Text),
            ("$collection", SqliteType.Text),
            ("$doc", SqliteType.Text),
            ("$rev", SqliteType.Integer),
            ("$status", SqliteType.Integer),
            ("$record", SqliteType.Blob),
            ("$created_at", SqliteType.Integer),
            ("$resolved_at", SqliteType.Integer));
        WriteClock = Create(
            connection,
            "INSERT INTO meta (key, value) VALUES ('clock', $value) ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
            ("$value", SqliteType.Text));
    }

    public SqliteCommand Begin { get; }

    public SqliteCommand Commit { get; }

    public SqliteCommand Rollback { get; }

    public SqliteCommand ReadClient { get; }

    public SqliteCommand WriteClient { get; }

    public SqliteCommand ReadScope { get; }

    public SqliteCommand WriteScope { get; }

    public SqliteCommand ReadDocument { get; }

    public SqliteCommand WriteDocument { get; }

    public SqliteCommand ReadConflict { get; }

    public SqliteCommand WriteConflict { get; }

    public SqliteCommand WriteClock { get; }

    public void Dispose()
    {
        foreach (var command in _all)
        {
            command.Dispose();
        }

        _all.Clear();
    }

    private SqliteCommand Create(SqliteConnection connection, string sql, params (string Name, SqliteType Type)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, type) in parameters)
        {
            command.Parameters.Add(name, type);
        }

        command.Prepare();
        _all.Add(command);
        return command;
    }
}

/// <summary>A write transaction on the store's one writer connection; the store's write lock is held until it is disposed.</summary>
internal sealed class SqliteSyncTransaction(SqliteSyncStore store, WriterCommands commands) : ISyncTransaction
{
    private bool _committed;
    private bool _disposed;

    public ValueTask<ClientProgress> ReadClientProgressAsync(string principal, string clientId, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.ReadClient;
        command.Parameters[0].Value = principal;
        command.Parameters[1].Value = clientId;
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return new ValueTask<ClientProgress>(ClientProgress.None);
        }

        var hlc = (byte[])reader.GetValue(1);
        return new ValueTask<ClientProgress>(new ClientProgress(reader.GetInt64(0), HybridTimestamp.ReadFrom(hlc)));
    }

    public ValueTask WriteClientProgressAsync(string principal, string clientId, ClientProgress progress, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.WriteClient;
        command.Parameters[0].Value = principal;
        command.Parameters[1].Value = clientId;
        command.Parameters[2].Value = progress.LastMutationId;
        var hlc = new byte[HybridTimestamp.BinarySize];
        progress.LastHlc.WriteTo(hlc);
        command.Parameters[3].Value = hlc;
        command.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask<long> ReadScopeRevisionAsync(string scope, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.ReadScope;
        command.Parameters[0].Value = scope;
        return new ValueTask<long>(command.ExecuteScalar() is long revision ? revision : 0);
    }

    public ValueTask WriteScopeRevisionAsync(string scope, long revision, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.WriteScope;
        command.Parameters[0].Value = scope;
        command.Parameters[1].Value = revision;
        command.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask ReadDocumentsAsync(IReadOnlyList<DocumentKey> keys, IDictionary<DocumentKey, DocumentState> found, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        // One prepared point lookup per key: in-process SQLite has no round trip to save, and the primary key seek is
        // cheaper than building a statement for each batch size.
        var command = commands.ReadDocument;
        var scope = command.Parameters[0];
        var collection = command.Parameters[1];
        var id = command.Parameters[2];
        for (var i = 0; i < keys.Count; i++)
        {
            var key = keys[i];
            scope.Value = key.Scope;
            collection.Value = key.Collection;
            id.Value = key.Id;
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                found[key] = SqliteSyncStore.DeserializeState(reader, 0);
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteDocumentAsync(DocumentKey key, DocumentState state, DateTimeOffset? deletedAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        ThrowIfDone(cancellationToken);
        var command = commands.WriteDocument;
        var p = command.Parameters;
        p[0].Value = key.Scope;
        p[1].Value = key.Collection;
        p[2].Value = key.Id;
        p[3].Value = state.Revision;
        p[4].Value = state.Deleted ? 1L : 0L;
        p[5].Value = state.Deleted && deletedAt is { } at ? at.ToUnixTimeMilliseconds() : DBNull.Value;
        p[6].Value = JsonSerializer.SerializeToUtf8Bytes(state, ProtocolJson.DocumentState);
        command.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.ReadConflict;
        command.Parameters[0].Value = id;
        using var reader = command.ExecuteReader();
        return new ValueTask<ConflictRecord?>(reader.Read() ? SqliteSyncStore.DeserializeConflict(reader, 0) : null);
    }

    public ValueTask WriteConflictAsync(ConflictRecord record, DateTimeOffset? resolvedAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ThrowIfDone(cancellationToken);
        var command = commands.WriteConflict;
        var p = command.Parameters;
        p[0].Value = record.Id;
        p[1].Value = record.Scope;
        p[2].Value = record.Collection;
        p[3].Value = record.DocumentId;
        p[4].Value = record.Revision;
        p[5].Value = record.Status == ConflictStatus.Resolved ? 1L : 0L;
        p[6].Value = JsonSerializer.SerializeToUtf8Bytes(record, ProtocolJson.ConflictRecord);
        p[7].Value = record.CreatedAt.ToUnixTimeMilliseconds();
        p[8].Value = record.Status == ConflictStatus.Resolved && resolvedAt is { } at ? at.ToUnixTimeMilliseconds() : DBNull.Value;
        command.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteClockAsync(HybridTimestamp last, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.WriteClock;
        command.Parameters[0].Value = last.ToString();
        command.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask CommitAsync(CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        commands.Commit.ExecuteNonQuery();
        _committed = true;
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            store.EndTransaction(_committed);
        }

        return ValueTask.CompletedTask;
    }

    private void ThrowIfDone(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed)
        {
            throw new InvalidOperationException("The transaction is committed.");
        }

        cancellationToken.ThrowIfCancellationRequested();
    }
}
