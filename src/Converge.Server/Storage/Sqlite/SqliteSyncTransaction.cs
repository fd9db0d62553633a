using Converge.Sqlite;
using System.Buffers;
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
        ReadClient = Create(connection, "SELECT last_mutation, last_hlc, recent FROM clients WHERE principal = $principal AND client = $client;", ("$principal", SqliteType.Text), ("$client", SqliteType.Text));
        WriteClient = Create(
            connection,
            "INSERT INTO clients (principal, client, last_mutation, last_hlc, recent, last_used) VALUES ($principal, $client, $last, $hlc, $recent, $used) ON CONFLICT (principal, client) DO UPDATE SET last_mutation = excluded.last_mutation, last_hlc = excluded.last_hlc, recent = excluded.recent, last_used = excluded.last_used;",
            ("$principal", SqliteType.Text),
            ("$client", SqliteType.Text),
            ("$last", SqliteType.Integer),
            ("$hlc", SqliteType.Blob),
            ("$recent", SqliteType.Blob),
            ("$used", SqliteType.Integer));
        ReadScope = Create(connection, "SELECT revision FROM scopes WHERE scope = $scope;", ("$scope", SqliteType.Text));
        WriteScope = Create(
            connection,
            "INSERT INTO scopes (scope, revision) VALUES ($scope, $revision) ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision;",
            ("$scope", SqliteType.Text),
            ("$revision", SqliteType.Integer));
        // The two statements a push runs per document go straight to SQLite.
        ReadDocument = new NativeStatement(
            connection,
            "SELECT state FROM documents WHERE scope = $scope AND collection = $collection AND id = $id;",
            "$scope",
            "$collection",
            "$id");
        WriteDocument = new NativeStatement(
            connection,
            """
            INSERT INTO documents (scope, collection, id, rev, deleted, deleted_at, state) VALUES ($scope, $collection, $id, $rev, $deleted, $deleted_at, $state)
            ON CONFLICT (scope, collection, id) DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, deleted_at = excluded.deleted_at, state = excluded.state;
            """,
            "$scope",
            "$collection",
            "$id",
            "$rev",
            "$deleted",
            "$deleted_at",
            "$state");
        ReadConflict = Create(connection, "SELECT record FROM conflicts WHERE id = $id;", ("$id", SqliteType.Text));
        ReadOwnOpenConflicts = Create(
            connection,
            "SELECT record FROM conflicts WHERE scope = $scope AND collection = $collection AND doc = $doc AND status = 0 AND owner = $owner AND client = $client;",
            ("$scope", SqliteType.Text),
            ("$collection", SqliteType.Text),
            ("$doc", SqliteType.Text),
            ("$owner", SqliteType.Text),
            ("$client", SqliteType.Text));
        CountDocumentConflicts = Create(
            connection,
            "SELECT count(*) FROM conflicts WHERE scope = $scope AND collection = $collection AND doc = $doc AND status = 0;",
            ("$scope", SqliteType.Text),
            ("$collection", SqliteType.Text),
            ("$doc", SqliteType.Text));
        CountOpenConflicts = Create(connection, "SELECT count(*) FROM conflicts WHERE scope = $scope AND status = 0;", ("$scope", SqliteType.Text));
        WriteConflict = new NativeStatement(
            connection,
            """
            INSERT INTO conflicts (id, scope, collection, doc, rev, status, record, created_at, resolved_at, owner, client) VALUES ($id, $scope, $collection, $doc, $rev, $status, $record, $created_at, $resolved_at, $owner, $client)
            ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, status = excluded.status, record = excluded.record, resolved_at = excluded.resolved_at, owner = coalesce(excluded.owner, conflicts.owner);
            """,
            "$id",
            "$scope",
            "$collection",
            "$doc",
            "$rev",
            "$status",
            "$record",
            "$created_at",
            "$resolved_at",
            "$owner",
            "$client");
        StateWriter = new Utf8JsonWriter(StateBuffer);
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

    public NativeStatement ReadDocument { get; }

    public NativeStatement WriteDocument { get; }

    /// <summary>Gets the buffer a state is serialized into before it is bound, reused by every write.</summary>
    public ArrayBufferWriter<byte> StateBuffer { get; } = new(1024);

    /// <summary>Gets the writer over <see cref="StateBuffer"/>.</summary>
    public Utf8JsonWriter StateWriter { get; }

    public SqliteCommand ReadConflict { get; }

    public NativeStatement WriteConflict { get; }

    public SqliteCommand ReadOwnOpenConflicts { get; }

    public SqliteCommand CountDocumentConflicts { get; }

    public SqliteCommand CountOpenConflicts { get; }

    public SqliteCommand WriteClock { get; }

    public void Dispose()
    {
        foreach (var command in _all)
        {
            command.Dispose();
        }

        _all.Clear();
        ReadDocument.Dispose();
        WriteDocument.Dispose();
        WriteConflict.Dispose();
        StateWriter.Dispose();
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
        return new ValueTask<ClientProgress>(reader.Read() ? ReadProgress(reader) : ClientProgress.None);
    }

    public ValueTask<ClientProgress> ReadFormerClientProgressAsync(IReadOnlyList<string> formerPrincipals, string clientId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(formerPrincipals);
        ThrowIfDone(cancellationToken);
        var best = ClientProgress.None;
        var command = commands.ReadClient;
        foreach (var principal in formerPrincipals)
        {
            command.Parameters[0].Value = principal;
            command.Parameters[1].Value = clientId;
            using var reader = command.ExecuteReader();
            if (reader.Read() && ReadProgress(reader) is var found && found.LastMutationId > best.LastMutationId)
            {
                best = found;
            }
        }

        return new ValueTask<ClientProgress>(best);
    }

    private static ClientProgress ReadProgress(SqliteDataReader reader)
    {
        var hlc = (byte[])reader.GetValue(1);
        var recent = reader.IsDBNull(2) ? [] : ReadRecent((byte[])reader.GetValue(2));
        return new ClientProgress(reader.GetInt64(0), HybridTimestamp.ReadFrom(hlc)) { Recent = recent };
    }

    private const int RecentEntrySize = sizeof(long) + HybridTimestamp.BinarySize;

    /// <summary>Reads the recent mutations: per entry the id (8 bytes, big-endian) and the timestamp's binary form.</summary>
    private static AppliedMutation[] ReadRecent(byte[] bytes)
    {
        var entries = new AppliedMutation[bytes.Length / RecentEntrySize];
        for (var i = 0; i < entries.Length; i++)
        {
            var entry = bytes.AsSpan(i * RecentEntrySize, RecentEntrySize);
            entries[i] = new AppliedMutation(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(entry), HybridTimestamp.ReadFrom(entry[sizeof(long)..]));
        }

        return entries;
    }

    private static byte[] WriteRecent(IReadOnlyList<AppliedMutation> recent)
    {
        var bytes = new byte[recent.Count * RecentEntrySize];
        for (var i = 0; i < recent.Count; i++)
        {
            var entry = bytes.AsSpan(i * RecentEntrySize, RecentEntrySize);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(entry, recent[i].Id);
            recent[i].Hlc.WriteTo(entry[sizeof(long)..]);
        }

        return bytes;
    }

    public ValueTask WriteClientProgressAsync(string principal, string clientId, ClientProgress progress, DateTimeOffset usedAt, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.WriteClient;
        command.Parameters[0].Value = principal;
        command.Parameters[1].Value = clientId;
        command.Parameters[2].Value = progress.LastMutationId;
        var hlc = new byte[HybridTimestamp.BinarySize];
        progress.LastHlc.WriteTo(hlc);
        command.Parameters[3].Value = hlc;
        command.Parameters[4].Value = WriteRecent(progress.Recent);
        command.Parameters[5].Value = usedAt.ToUnixTimeMilliseconds();
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
        var statement = commands.ReadDocument;
        for (var i = 0; i < keys.Count; i++)
        {
            var key = keys[i];
            using var rows = statement.Text(0, key.Scope).Text(1, key.Collection).Text(2, key.Id).Query();
            if (rows.Next())
            {
                found[key] = JsonSerializer.Deserialize(statement.Bytes(0), ProtocolJson.DocumentState)
                    ?? throw new InvalidOperationException("A stored document state is null.");
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteDocumentAsync(DocumentKey key, DocumentState state, DateTimeOffset? deletedAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        ThrowIfDone(cancellationToken);
        var buffer = commands.StateBuffer;
        var writer = commands.StateWriter;
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        DocumentStateJson.Write(writer, state);
        writer.Flush();
        var statement = commands.WriteDocument
            .Text(0, key.Scope)
            .Text(1, key.Collection)
            .Text(2, key.Id)
            .Int(3, state.Revision)
            .Int(4, state.Deleted ? 1 : 0)
            .Blob(6, buffer.WrittenSpan);
        if (state.Deleted && deletedAt is { } at)
        {
            statement.Int(5, at.ToUnixTimeMilliseconds());
        }
        else
        {
            statement.Null(5);
        }

        statement.Execute();
        return ValueTask.CompletedTask;
    }

    public ValueTask<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.ReadConflict;
        command.Parameters[0].Value = id;
        using var reader = command.ExecuteReader();
        return new ValueTask<ConflictRecord?>(reader.Read() ? SqliteSql.ReadConflict(reader, 0) : null);
    }

    public ValueTask<ConflictRecord?> ReadOpenConflictAsync(DocumentKey key, string principal, string clientId, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.ReadOwnOpenConflicts;
        command.Parameters[0].Value = key.Scope;
        command.Parameters[1].Value = key.Collection;
        command.Parameters[2].Value = key.Id;
        command.Parameters[3].Value = principal;
        command.Parameters[4].Value = clientId;
        using var reader = command.ExecuteReader();
        return new ValueTask<ConflictRecord?>(reader.Read() ? SqliteSql.ReadConflict(reader, 0) : null);
    }

    public ValueTask<int> CountOpenConflictsAsync(DocumentKey key, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.CountDocumentConflicts;
        command.Parameters[0].Value = key.Scope;
        command.Parameters[1].Value = key.Collection;
        command.Parameters[2].Value = key.Id;
        return new ValueTask<int>(Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
    }

    public ValueTask<int> CountOpenConflictsAsync(string scope, CancellationToken cancellationToken)
    {
        ThrowIfDone(cancellationToken);
        var command = commands.CountOpenConflicts;
        command.Parameters[0].Value = scope;
        return new ValueTask<int>(Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
    }

    public ValueTask WriteConflictAsync(ConflictRecord record, DateTimeOffset? resolvedAt, string? owner, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ThrowIfDone(cancellationToken);
        var buffer = commands.StateBuffer;
        var writer = commands.StateWriter;
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        JsonSerializer.Serialize(writer, record, ProtocolJson.ConflictRecord);
        writer.Flush();
        var statement = commands.WriteConflict
            .Text(0, record.Id)
            .Text(1, record.Scope)
            .Text(2, record.Collection)
            .Text(3, record.DocumentId)
            .Int(4, record.Revision)
            .Int(5, record.Status == ConflictStatus.Resolved ? 1 : 0)
            .Blob(6, buffer.WrittenSpan)
            .Int(7, record.CreatedAt.ToUnixTimeMilliseconds());
        if (record.Status == ConflictStatus.Resolved && resolvedAt is { } at)
        {
            statement.Int(8, at.ToUnixTimeMilliseconds());
        }
        else
        {
            statement.Null(8);
        }

        if (owner is null)
        {
            statement.Null(9);
        }
        else
        {
            statement.Text(9, owner);
        }

        statement.Text(10, record.ClientId);

        statement.Execute();
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
        store.Committed();
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
