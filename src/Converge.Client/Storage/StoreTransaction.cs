namespace Converge.Client.Storage;

/// <summary>
/// The operations of one write transaction, on the store's write connection, with its statements prepared once, grouped
/// by what they store: documents, the outbox, conflict records, and the replica's own cursors, clock and id.
/// </summary>
internal sealed class StoreTransaction
{
    private readonly ClientStore _store;

    public StoreTransaction(ClientStore store, StoreStatements statements)
    {
        _store = store;
        Documents = new DocumentWrites(statements);
        Outbox = new OutboxWrites(store, statements);
        Conflicts = new ConflictWrites(statements);
        Replica = new ReplicaWrites(store, statements);
    }

    /// <summary>Gets the writes of documents: their server states, local values and pending counts.</summary>
    public DocumentWrites Documents { get; }

    /// <summary>Gets the writes of the outbox: the local mutations not yet acknowledged, and the next mutation id.</summary>
    public OutboxWrites Outbox { get; }

    /// <summary>Gets the writes of the conflict inbox.</summary>
    public ConflictWrites Conflicts { get; }

    /// <summary>Gets the writes of what the replica keeps of itself: its cursors, its clock and its id.</summary>
    public ReplicaWrites Replica { get; }

    /// <summary>Runs a statement that takes no parameters, such as an index's DDL.</summary>
    public int Execute(string sql) => _store.Execute(sql);

    /// <summary>Writes what the transaction kept in memory; called once, just before the commit.</summary>
    public void Flush() => Replica.Flush();
}
