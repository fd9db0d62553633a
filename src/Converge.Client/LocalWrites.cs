using System.Text.Json;
using Converge.Client.Storage;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>The local writes of a client: each commits its new local value and its outbox mutation in one transaction, then raises its change event.</summary>
internal sealed class LocalWrites(ConvergeClient client, ClientIdentity identity)
{
    private readonly ConvergeClient _client = client;
    private readonly ClientIdentity _identity = identity;

    /// <summary>Called after a local write commits a mutation to the outbox (the live channel pushes it at once).</summary>
    public Action? OutboxGrew { get; set; }

    /// <summary>Tells the live channel and the app's <see cref="ConvergeClient.PendingChanged"/> handlers that the outbox grew.</summary>
    public void Committed()
    {
        OutboxGrew?.Invoke();
        _client.RaisePendingChanged();
    }

    /// <summary>Commits a local write: the new local value and its outbox mutation in one transaction, then raises its change event.</summary>
    /// <returns>Whether anything was written (a delete of a deleted document writes nothing).</returns>
    public async Task<bool> WriteAsync(string scope, string collection, string id, MutationKind kind, JsonFields? fields, CancellationToken cancellationToken)
    {
        _client.ThrowIfDisposed();
        var change = await _client.Store.WriteAsync(tx => Write(tx, scope, collection, id, kind, fields, null, null), cancellationToken).ConfigureAwait(false);
        if (change is null)
        {
            return false;
        }

        _client.Changes.Publish(change);
        Committed();
        return true;
    }

    /// <summary>Commits many local writes in one transaction: each its own outbox mutation, their change events raised after the commit.</summary>
    /// <returns>The number of writes committed: a delete of a document already deleted writes nothing.</returns>
    public async Task<int> WriteBatchAsync(IReadOnlyList<BatchWrite> writes, CancellationToken cancellationToken)
    {
        if (writes.Count == 0)
        {
            return 0;
        }

        var changes = await _client.Store.WriteAsync(
            tx =>
            {
                var changes = new List<StoreChange>(writes.Count);
                foreach (var write in writes)
                {
                    if (Write(tx, write.Scope, write.Collection, write.Id, write.Kind, write.Fields, null, null) is { } change)
                    {
                        changes.Add(change);
                    }
                }

                return changes;
            },
            cancellationToken).ConfigureAwait(false);
        _client.Changes.Publish(changes);
        if (changes.Count > 0)
        {
            Committed();
        }

        return changes.Count;
    }

    /// <summary>Writes one local mutation inside a transaction; throws, changing nothing, when the write is invalid.</summary>
    public StoreChange? Write(StoreTransaction tx, string scope, string collection, string id, MutationKind kind, JsonFields? fields, IReadOnlyList<string>? remove, string? conflictId)
    {
        (long Id, Protocol.HybridTimestamp Hlc)? taken = null;
        if (kind == MutationKind.Put && conflictId is null && fields is { Count: > 0 } && TryWriteNewPut(tx, scope, collection, id, fields, out taken) is { } created)
        {
            return created;
        }

        var row = tx.Documents.Get(scope, collection, id);
        var view = row is null ? LocalView.Rebuild(null, []) : LocalView.FromStored(row);
        var deleted = row is not null && view.Value is null;
        switch (kind)
        {
            case MutationKind.Delete when deleted:
                return null;
            case MutationKind.Patch or MutationKind.Increment when deleted:
                throw new InvalidOperationException($"Document '{id}' of collection '{collection}' is deleted; a put re-creates it.");
            case MutationKind.Increment:
                foreach (var (name, amount) in fields!)
                {
                    if (view.Value is null || !view.Value.TryGetValue(name, out var current))
                    {
                        continue;
                    }

                    if (current.ValueKind != JsonValueKind.Number)
                    {
                        throw new InvalidOperationException($"Field '{name}' of document '{id}' holds {current.ValueKind}, not a number, and cannot be incremented.");
                    }

                    if (!DocumentMerge.TryAddNumbers(current, amount, out _))
                    {
                        throw new InvalidOperationException($"Incrementing field '{name}' of document '{id}' would overflow: the sum is out of range.");
                    }
                }

                break;
        }

        if (kind == MutationKind.Put && view.Value is not null)
        {
            var removed = new List<string>();
            foreach (var name in view.Value.Keys)
            {
                if (!fields!.ContainsKey(name))
                {
                    removed.Add(name);
                }
            }

            remove = removed.Count > 0 ? removed : null;
        }

        var mutation = new Mutation
        {
            Id = 1,
            Scope = scope,
            Collection = collection,
            DocumentId = id,
            Kind = kind,
            Hlc = _identity.Clock.Last,
            BaseRevision = row?.ServerRevision ?? 0,
            Fields = kind == MutationKind.Delete ? null : fields,
            Remove = remove,
            BaseValues = kind == MutationKind.Delete ? null : BaseValues(row, fields, remove),
            ConflictId = conflictId,
        };
        if (_client.Limits.Check(mutation) is { } error)
        {
            throw new ArgumentException(error.Message);
        }

        // A put that found the document has a row keeps the id and timestamp it took.
        mutation = taken is { } t ? mutation with { Id = t.Id, Hlc = t.Hlc } : mutation with { Id = tx.Outbox.NextMutationId(), Hlc = _identity.Clock.Now() };
        view.Apply(mutation);

        tx.Outbox.Add(mutation);

        // A put of a new document: its value is exactly the mutation's fields, already written once for the outbox.
        var json = row is null && kind == MutationKind.Put ? tx.Outbox.LastMutationFields() : view.Value?.ToJson();
        tx.Documents.Put(scope, collection, id, row, view, json, (row?.Pending ?? 0) + 1);

        // The clock is not saved here: the mutation's timestamp is in its outbox row, which the store reads at open.
        return new StoreChange(scope, collection, id, ToChangeKind(kind), ChangeOrigin.Local, json);
    }

    /// <summary>
    /// Writes a put as that of a new document without reading the document first: the row's insert finds whether it
    /// exists. The document's row holds the put (its value is the put's fields, every field has the put's timestamp), and
    /// the put's outbox row only its place in the order and its keys. Returns <see langword="null"/>, having changed nothing, when the document has a row or the put is invalid;
    /// the caller then writes it reading the row, with the mutation id and timestamp given in <paramref name="taken"/>.
    /// </summary>
    private StoreChange? TryWriteNewPut(StoreTransaction tx, string scope, string collection, string id, JsonFields fields, out (long Id, Protocol.HybridTimestamp Hlc)? taken)
    {
        taken = null;
        var mutation = new Mutation
        {
            Id = 1,
            Scope = scope,
            Collection = collection,
            DocumentId = id,
            Kind = MutationKind.Put,
            Hlc = _identity.Clock.Last,
            BaseRevision = 0,
            Fields = fields,
        };
        if (_client.Limits.Check(mutation) is not null)
        {
            return null;
        }

        mutation = mutation with { Id = tx.Outbox.NextMutationId(), Hlc = _identity.Clock.Now() };
        tx.Outbox.WriteMutation(mutation);
        if (!tx.Outbox.TryInsertPut(mutation))
        {
            taken = (mutation.Id, mutation.Hlc);
            return null;
        }

        tx.Outbox.AddPut(mutation);
        return new StoreChange(scope, collection, id, ChangeKind.Put, ChangeOrigin.Local, tx.Outbox.LastMutationFields());
    }

    /// <summary>The values the written and removed fields have in the server state the write starts from; a field it lacks is left out.</summary>
    private static Dictionary<string, JsonElement>? BaseValues(DocumentRow? row, JsonFields? fields, IReadOnlyList<string>? remove)
    {
        if (row?.ServerState is not { Deleted: false } server)
        {
            return null;
        }

        Dictionary<string, JsonElement>? values = null;
        foreach (var name in (fields?.Keys ?? Enumerable.Empty<string>()).Concat(remove ?? []))
        {
            if (server.Fields.TryGetValue(name, out var field) && !field.Removed)
            {
                (values ??= new Dictionary<string, JsonElement>(StringComparer.Ordinal))[name] = field.Value;
            }
        }

        return values;
    }

    private static ChangeKind ToChangeKind(MutationKind kind) => kind switch
    {
        MutationKind.Put => ChangeKind.Put,
        MutationKind.Patch => ChangeKind.Patch,
        MutationKind.Delete => ChangeKind.Delete,
        MutationKind.Increment => ChangeKind.Increment,
        _ => ChangeKind.Resolve,
    };
}
