using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Converge.Client.Storage;
using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>The conflicts the server's Manual policy left for a person, as pulled by sync; resolved here like any local write.</summary>
/// <remarks>
/// A resolution writes the chosen values to the document locally and puts a <c>resolve</c> mutation in the outbox, in
/// one transaction; the conflict is then <see cref="InboxConflictStatus.Resolving"/> until the server confirms it, and
/// leaves the inbox when a pull brings the resolved record. If the server refuses the resolution, it is open again.
/// </remarks>
public sealed class ConflictInbox
{
    private readonly ConvergeClient _client;
    private readonly Lock _lock = new();
    private EventHandler<ConflictChangedEventArgs>? _changed;
    private IDisposable? _subscription;

    internal ConflictInbox(ConvergeClient client) => _client = client;

    /// <summary>Raised when a conflict arrives, is resolved here, or leaves the inbox; on the thread that committed the change.</summary>
    public event EventHandler<ConflictChangedEventArgs>? Changed
    {
        add
        {
            lock (_lock)
            {
                _changed += value;
                _subscription ??= _client.ConflictChanges.Subscribe(e => Events.Raise(_changed, this, e, _client.Logger));
            }
        }

        remove
        {
            lock (_lock)
            {
                _changed -= value;
                if (_changed is null)
                {
                    _subscription?.Dispose();
                    _subscription = null;
                }
            }
        }
    }

    /// <summary>Lists the conflicts in the inbox: open ones and those resolved here but not yet synced.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The conflicts, by scope and server revision.</returns>
    public Task<IReadOnlyList<InboxConflict>> ListAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _client.ThrowIfDisposed();
        using var connection = _client.Store.OpenRead();
        IReadOnlyList<InboxConflict> result = StoreReads.Conflicts(connection)
            .Select(row => new InboxConflict(row.Record, row.Resolving ? InboxConflictStatus.Resolving : InboxConflictStatus.Open))
            .ToList();
        return Task.FromResult(result);
    }

    /// <summary>Streams the inbox's changes, from the first <c>MoveNextAsync</c> until cancelled or the client is disposed.</summary>
    /// <param name="cancellationToken">Ends the stream (with <see cref="OperationCanceledException"/>).</param>
    /// <returns>The changes, in the order they were committed.</returns>
    public async IAsyncEnumerable<ConflictChangedEventArgs> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        _client.ThrowIfDisposed();
        var channel = Channel.CreateUnbounded<ConflictChangedEventArgs>(new UnboundedChannelOptions { SingleReader = true });
        using var subscription = _client.ConflictChanges.Subscribe(e => channel.Writer.TryWrite(e), () => channel.Writer.TryComplete());
        while (await channel.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (channel.Reader.TryRead(out var change))
            {
                yield return change;
            }
        }
    }

    /// <summary>Resolves a conflict by keeping one side's values.</summary>
    /// <param name="conflictId">The conflict's id.</param>
    /// <param name="choice"><see cref="ConflictChoice.Mine"/>: the values of the write that met the conflict (the record's client values); <see cref="ConflictChoice.Theirs"/>: the server's values.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the resolution is committed locally.</returns>
    /// <exception cref="ArgumentException">No such conflict is in the inbox.</exception>
    /// <exception cref="InvalidOperationException">The conflict is already resolved here and waits to sync.</exception>
    public Task ResolveAsync(string conflictId, ConflictChoice choice, CancellationToken cancellationToken = default)
    {
        if (!Enum.IsDefined(choice))
        {
            throw new ArgumentOutOfRangeException(nameof(choice), choice, "Choose Mine or Theirs.");
        }

        return ResolveAsync(conflictId, choice, null, cancellationToken);
    }

    /// <summary>Resolves a conflict with edited values.</summary>
    /// <param name="conflictId">The conflict's id.</param>
    /// <param name="editedValues">The value of each conflicting field to keep; a conflicting field left out keeps the server's value.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the resolution is committed locally.</returns>
    /// <exception cref="ArgumentException">No such conflict is in the inbox, the values are empty, or they name a field that is not in conflict.</exception>
    /// <exception cref="InvalidOperationException">The conflict is already resolved here and waits to sync.</exception>
    public Task ResolveAsync(string conflictId, JsonObject editedValues, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(editedValues);
        if (editedValues.Count == 0)
        {
            throw new ArgumentException("Give the value of at least one conflicting field.", nameof(editedValues));
        }

        return ResolveAsync(conflictId, null, editedValues, cancellationToken);
    }

    private async Task ResolveAsync(string conflictId, ConflictChoice? choice, JsonObject? edited, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(conflictId);
        _client.ThrowIfDisposed();
        var editedFields = edited is null ? null : DocumentJson.FieldsOf(edited, nameof(edited));
        var (change, conflictChange) = await _client.Store.WriteAsync(
            tx =>
            {
                var row = tx.Conflicts.Get(conflictId) ?? throw new ArgumentException($"Conflict '{conflictId}' is not in the inbox.", nameof(conflictId));
                if (row.Resolving)
                {
                    throw new InvalidOperationException($"Conflict '{conflictId}' is already resolved on this client; the resolution waits to sync.");
                }

                var record = row.Record;
                var fields = new JsonFields();
                var remove = new List<string>();
                if (editedFields is not null)
                {
                    foreach (var (name, value) in editedFields)
                    {
                        if (!record.Fields.Any(f => f.Name == name))
                        {
                            throw new ArgumentException($"Field '{name}' is not in conflict {conflictId}; edited values name conflicting fields only.", nameof(edited));
                        }

                        fields[name] = value;
                    }
                }
                else
                {
                    foreach (var field in record.Fields)
                    {
                        var side = choice == ConflictChoice.Mine ? field.Client : field.Server;
                        if (side.Removed)
                        {
                            remove.Add(field.Name);
                        }
                        else
                        {
                            fields[field.Name] = side.Value;
                        }
                    }
                }

                var change = _client.Writes.Write(tx, record.Scope, record.Collection, record.DocumentId, MutationKind.Resolve, fields, remove.Count > 0 ? remove : null, conflictId);
                tx.Conflicts.SetResolving(conflictId, true);
                return (change, new ConflictChangedEventArgs(new InboxConflict(record, InboxConflictStatus.Resolving)));
            },
            cancellationToken).ConfigureAwait(false);
        Log.ConflictResolvedLocally(_client.Logger, conflictId, choice?.ToString() ?? "edited");
        if (change is not null)
        {
            _client.Changes.Publish(change);
        }

        _client.ConflictChanges.Publish(conflictChange);
        _client.Writes.Committed();
    }
}
