using Converge.Protocol.Documents;

namespace Converge.Client.Storage;

/// <summary>A stored document row; the server state is parsed when first read.</summary>
internal sealed class DocumentRow(string? serverStateJson, long serverRevision, string? localValue, string? localTimestamps, int pending)
{
    private DocumentState? _serverState;

    /// <summary>Gets the server's state as stored, or <see langword="null"/> when the server has not sent the document.</summary>
    public string? ServerStateJson { get; } = serverStateJson;

    public DocumentState? ServerState => ServerStateJson is null ? null : _serverState ??= StoreJson.DeserializeState(ServerStateJson);

    public long ServerRevision { get; } = serverRevision;

    public string? LocalValue { get; } = localValue;

    public string? LocalTimestamps { get; } = localTimestamps;

    public int Pending { get; } = pending;
}

/// <summary>The writes of a transaction to the documents table, and to the documents noted for a rebuild (<c>stale</c>).</summary>
internal sealed class DocumentWrites(StoreStatements sql)
{
    public DocumentRow? Get(string scope, string collection, string id)
    {
        var statement = sql.GetDocument.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        if (!rows.Next())
        {
            return null;
        }

        return new DocumentRow(statement.String(0), statement.Int64(1), statement.String(2), statement.String(3), (int)statement.Int64(4));
    }

    /// <summary>Reads what a pulled change needs of a stored row: its server revision, local value and pending count.</summary>
    public bool TryGetBrief(string scope, string collection, string id, out long serverRevision, out string? localValue, out int pending)
    {
        var statement = sql.GetDocumentBrief.Text(0, scope).Text(1, collection).Text(2, id);
        using var rows = statement.Query();
        if (!rows.Next())
        {
            (serverRevision, localValue, pending) = (0, null, 0);
            return false;
        }

        serverRevision = statement.Int64(0);
        localValue = statement.String(1);
        pending = (int)statement.Int64(2);
        return true;
    }

    /// <summary>Writes a document row, or removes it when it holds nothing: no server state, no value, nothing pending.</summary>
    public void Put(string scope, string collection, string id, string? serverState, long serverRevision, string? localValue, string? localTimestamps, int pending)
    {
        if (serverState is null && localValue is null && pending == 0)
        {
            Delete(scope, collection, id);
            return;
        }

        sql.PutDocument.Text(3, serverState);
        Put(scope, collection, id, serverRevision, localValue, localTimestamps, pending);
    }

    /// <summary>Writes a document row whose server state is UTF-8 JSON, as a pull brings it.</summary>
    public void Put(string scope, string collection, string id, ReadOnlySpan<byte> serverState, long serverRevision, string? localValue, string? localTimestamps, int pending)
    {
        sql.PutDocument.Text(3, serverState);
        Put(scope, collection, id, serverRevision, localValue, localTimestamps, pending);
    }

    /// <summary>Writes a document row from a local view.</summary>
    /// <remarks>
    /// Writing a row clears the put it held (see <see cref="OutboxWrites.AddPut"/>): a trigger first writes the put's JSON
    /// into its outbox row, from the row as it was.
    /// </remarks>
    public void Put(string scope, string collection, string id, DocumentRow? row, LocalView view, string? localValue, int pending) =>
        Put(scope, collection, id, row?.ServerStateJson, row?.ServerRevision ?? 0, localValue, view.TimestampsJson(), pending);

    private void Put(string scope, string collection, string id, long serverRevision, string? localValue, string? localTimestamps, int pending) =>
        sql.PutDocument
            .Text(0, scope)
            .Text(1, collection)
            .Text(2, id)
            .Int(4, serverRevision)
            .Text(5, localValue)
            .Text(6, localTimestamps)
            .Int(7, pending)
            .Execute();

    public void Delete(string scope, string collection, string id) =>
        sql.DeleteDocument.Text(0, scope).Text(1, collection).Text(2, id).Execute();

    /// <summary>Takes the outbox's mutations with ids in (<paramref name="after"/>, <paramref name="last"/>] off their documents' pending counts, in one statement; removes the rows left holding nothing.</summary>
    /// <remarks>Runs before the mutations leave the outbox.</remarks>
    public void SettlePending(long after, long last)
    {
        List<(string Scope, string Collection, string Id)>? empty = null;
        var statement = sql.SettleBatch.Int(0, after).Int(1, last);
        using (var rows = statement.Query())
        {
            while (rows.Next())
            {
                if (statement.Int64(3) == 0 && statement.Int64(4) != 0)
                {
                    (empty ??= []).Add((statement.String(0)!, statement.String(1)!, statement.String(2)!));
                }
            }
        }

        foreach (var (scope, collection, id) in empty ?? [])
        {
            Delete(scope, collection, id);
        }
    }

    /// <summary>Drops a scope's documents that have no pending mutations; returns the dropped documents that had a value, with it.</summary>
    public List<(string Collection, string Id, string LocalValue)> DropSettled(string scope)
    {
        var dropped = new List<(string, string, string)>();
        var statement = sql.DropSettledDocuments.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            if (statement.String(2) is { } value)
            {
                dropped.Add((statement.String(0)!, statement.String(1)!, value));
            }
        }

        return dropped;
    }

    /// <summary>Forgets the server state and revision of a scope's documents, keeping their local values and pending counts: the server's history they came from is gone.</summary>
    public void ForgetServerStates(string scope) => sql.ForgetServerStates.Text(0, scope).Execute();

    /// <summary>Notes that a document's local value must be rebuilt from its server state once the scope's next pull is done: the server answered a mutation of it without a new revision.</summary>
    public void MarkStale(string scope, string collection, string id) =>
        sql.MarkStale.Text(0, scope).Text(1, collection).Text(2, id).Execute();

    /// <summary>Removes and returns the documents of a scope noted by <see cref="MarkStale"/>.</summary>
    public List<(string Collection, string Id)> TakeStale(string scope)
    {
        var keys = new List<(string, string)>();
        var statement = sql.TakeStale.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            keys.Add((statement.String(0)!, statement.String(1)!));
        }

        return keys;
    }
}
