using System.Text.Json;
using Converge.Protocol.Messages;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The embedded store's reads outside write transactions: pull pages and conflict records, each from one snapshot on a pooled connection.</summary>
/// <remarks>
/// A pull is an index seek on (scope, rev) in documents and in conflicts, merged in revision order, so its cost follows
/// the changes, not the store; the states are read as the JSON they are stored as, and sent as they are.
/// </remarks>
internal sealed class SqliteChangeReader(SqliteSyncStore store)
{
    private readonly SqliteSyncStore _store = store;

    public Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        var page = ReadRawChanges(scope, after, limit, maxBytes, cancellationToken);
        var documents = new List<DocumentChange>(page.Documents.Count);
        foreach (var document in page.Documents)
        {
            documents.Add(new DocumentChange
            {
                Collection = document.Collection,
                DocumentId = document.Id,
                State = JsonSerializer.Deserialize(document.State.Span, ProtocolJson.DocumentState)
                    ?? throw new InvalidOperationException("A stored document state is null."),
            });
        }

        var conflicts = new List<ConflictRecord>(page.Conflicts.Count);
        foreach (var conflict in page.Conflicts)
        {
            conflicts.Add(JsonSerializer.Deserialize(conflict.Record.Span, ProtocolJson.ConflictRecord)
                ?? throw new InvalidOperationException("A stored conflict record is null."));
        }

        return Task.FromResult(new ChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = page.HasMore,
            ScopeRevision = page.ScopeRevision,
            MinValidCursor = page.MinValidCursor,
        });
    }

    public ValueTask<RawChangePage> ReadRawChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ReadRawChanges(scope, after, limit, maxBytes, cancellationToken));

    /// <summary>Reads a page of a scope's changes from one snapshot, with each document's state as the JSON it is stored as, so a pull can send it without building it.</summary>
    public RawChangePage ReadRawChanges(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = _store.OpenRead();
        using var transaction = connection.BeginTransaction(deferred: true);
        var (scopeRevision, minValid) = SqliteSql.ReadScope(connection, scope);

        using var documentsCommand = connection.CreateCommand();
        documentsCommand.CommandText = "SELECT rev, collection, id, length(state), state FROM documents WHERE scope = $scope AND rev > $after ORDER BY rev LIMIT $limit;";
        documentsCommand.Parameters.AddWithValue("$scope", scope);
        documentsCommand.Parameters.AddWithValue("$after", after);
        documentsCommand.Parameters.AddWithValue("$limit", limit + 1);
        using var conflictsCommand = connection.CreateCommand();
        conflictsCommand.CommandText = "SELECT rev, length(record), record FROM conflicts WHERE scope = $scope AND rev > $after ORDER BY rev LIMIT $limit;";
        conflictsCommand.Parameters.AddWithValue("$scope", scope);
        conflictsCommand.Parameters.AddWithValue("$after", after);
        conflictsCommand.Parameters.AddWithValue("$limit", limit + 1);

        var documents = new List<RawDocument>();
        var conflicts = new List<RawConflict>();
        var hasMore = false;
        using (var documentRows = documentsCommand.ExecuteReader())
        using (var conflictRows = conflictsCommand.ExecuteReader())
        {
            var hasDocument = documentRows.Read();
            var hasConflict = conflictRows.Read();
            var taken = 0;
            long bytes = 0;
            while ((hasDocument || hasConflict) && taken < limit)
            {
                // The length is known before the blob is read: an item that would take the page past its bytes ends it.
                if (hasDocument && (!hasConflict || documentRows.GetInt64(0) < conflictRows.GetInt64(0)))
                {
                    var length = documentRows.GetInt64(3);
                    if (taken > 0 && bytes + length > maxBytes)
                    {
                        break;
                    }

                    // The blob as one array (sqlite3_column_blob); GetBytes would open a blob handle per call.
                    documents.Add(new RawDocument
                    {
                        Revision = documentRows.GetInt64(0),
                        Collection = documentRows.GetString(1),
                        Id = documentRows.GetString(2),
                        State = documentRows.GetFieldValue<byte[]>(4),
                    });
                    hasDocument = documentRows.Read();
                    bytes += length;
                }
                else
                {
                    var length = conflictRows.GetInt64(1);
                    if (taken > 0 && bytes + length > maxBytes)
                    {
                        break;
                    }

                    conflicts.Add(new RawConflict { Revision = conflictRows.GetInt64(0), Record = conflictRows.GetFieldValue<byte[]>(2) });
                    hasConflict = conflictRows.Read();
                    bytes += length;
                }

                taken++;
            }

            hasMore = hasDocument || hasConflict;
        }

        return new RawChangePage
        {
            Documents = documents,
            Conflicts = conflicts,
            HasMore = hasMore,
            ScopeRevision = scopeRevision,
            MinValidCursor = minValid,
        };
    }

    public Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = _store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT length(record), record FROM conflicts WHERE scope = $scope AND status = 0 AND rev > $after ORDER BY rev LIMIT $limit;";
        command.Parameters.AddWithValue("$scope", scope);
        command.Parameters.AddWithValue("$after", after);
        command.Parameters.AddWithValue("$limit", limit + 1);
        using var reader = command.ExecuteReader();
        var records = new List<ConflictRecord>();
        long bytes = 0;
        var more = false;
        while (reader.Read())
        {
            var length = reader.GetInt64(0);
            if (records.Count == limit || (records.Count > 0 && bytes + length > maxBytes))
            {
                more = true;
                break;
            }

            records.Add(SqliteSql.ReadConflict(reader, 1));
            bytes += length;
        }

        return Task.FromResult(new ConflictPage { Conflicts = records, HasMore = more });
    }

    public Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        cancellationToken.ThrowIfCancellationRequested();
        using var connection = _store.OpenRead();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT record FROM conflicts WHERE id = $id;";
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        return Task.FromResult(reader.Read() ? SqliteSql.ReadConflict(reader, 0) : null);
    }
}
