using System.Text.Json;
using Converge.Client.Storage;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Client.Sync;

/// <summary>
/// Applies the server's changes to the local store, from a pull or the live channel, and rebuilds the local values of
/// documents from their server state with their still-pending writes on top.
/// </summary>
internal sealed class PageApplier(ConvergeClient client, ClientIdentity identity, ILogger logger)
{
    private readonly ConvergeClient _client = client;
    private readonly ClientIdentity _identity = identity;
    private readonly ILogger _logger = logger;

    /// <summary>Applies a page of changes given as states, for callers that hold <see cref="DocumentChange"/>s rather than the server's JSON.</summary>
    public Task<(int Documents, int ConflictsOpened, int ConflictsResolved)> ApplyAsync(string scope, IReadOnlyList<DocumentChange> changes, IReadOnlyList<ConflictRecord>? conflicts, long cursor, bool reset, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changes);
        var raw = new List<PageChange>(changes.Count);
        foreach (var change in changes)
        {
            if (change?.State is null)
            {
                throw new ConvergeSyncException($"A page of scope '{scope}' holds a change without a valid collection, id and state.");
            }

            raw.Add(new PageChange(change.Collection, change.DocumentId, JsonSerializer.SerializeToUtf8Bytes(change.State, ProtocolJson.DocumentState)));
        }

        return ApplyRawAsync(scope, raw, conflicts, cursor, reset, cancellationToken);
    }

    /// <summary>Applies a page of changes of one scope, and its new cursor, in one transaction; then raises their events.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="changes">The documents' new server states, as JSON.</param>
    /// <param name="conflicts">Conflict records created, changed or resolved.</param>
    /// <param name="cursor">The scope's cursor after the page: pass it only when every change up to it has been applied. The stored cursor never moves back, except on a reset.</param>
    /// <param name="reset">Whether the scope restarts from scratch: its documents without pending writes are dropped first.</param>
    /// <param name="cancellationToken">Cancels before the transaction starts.</param>
    /// <returns>How many documents and conflict records were applied.</returns>
    /// <remarks>
    /// Takes its page from any source (a pull, a live message), so it trusts nothing: names are checked, states are read
    /// strictly, and a change older than the stored server state is skipped. Each document's local value is rebuilt as the
    /// new server state with the document's still-pending outbox mutations re-applied on top; a document with nothing
    /// pending takes the state's values directly, without building the state.
    /// </remarks>
    /// <param name="conflictJson">The records' JSON as received, kept as it is; <see langword="null"/> to write them from the records.</param>
    /// <param name="epoch">The server store's epoch the cursor belongs to, stored with it; <see langword="null"/> keeps the stored one.</param>
    /// <param name="forgetServerStates">
    /// With <paramref name="reset"/>: the server's history changed (a new epoch), so the documents kept for their pending
    /// writes forget their server state and revision too, and their next writes do not take a base from the old history.
    /// </param>
    public async Task<(int Documents, int ConflictsOpened, int ConflictsResolved)> ApplyRawAsync(string scope, IReadOnlyList<PageChange> changes, IReadOnlyList<ConflictRecord>? conflicts, long cursor, bool reset, CancellationToken cancellationToken, IReadOnlyList<ReadOnlyMemory<byte>>? conflictJson = null, string? epoch = null, bool forgetServerStates = false)
    {
        _client.ThrowIfDisposed();
        CheckPage(scope, changes, conflicts);
        var (events, conflictEvents, applied, opened, resolved) = await _client.Store.WriteAsync(
            tx =>
            {
                var dropped = new Dictionary<(string Collection, string Id), string>();
                var conflictEvents = new List<ConflictChangedEventArgs>();
                if (reset)
                {
                    foreach (var (collection, id, value) in tx.Documents.DropSettled(scope))
                    {
                        dropped[(collection, id)] = value;
                    }

                    foreach (var conflictId in tx.Conflicts.DropSettled(scope))
                    {
                        conflictEvents.Add(new ConflictChangedEventArgs(conflictId));
                    }

                    if (forgetServerStates)
                    {
                        tx.Documents.ForgetServerStates(scope);
                    }

                    Log.ScopeReset(_logger, scope, dropped.Count);
                }

                var events = new List<StoreChange>();
                var applied = 0;
                foreach (var change in changes)
                {
                    StateSummary state;
                    try
                    {
                        state = StateJson.Read(change.State.Span);
                    }
                    catch (JsonException e)
                    {
                        throw new ConvergeSyncException($"A page of scope '{scope}' holds an invalid document state: {e.Message}", e);
                    }

                    var exists = tx.Documents.TryGetBrief(scope, change.Collection, change.DocumentId, out var storedRevision, out var before, out var pendingCount);

                    // A change older than the stored state is a late duplicate (a live message after a pull); a reset page is
                    // the server's word on the scope and applies whatever was stored.
                    if (!reset && exists && storedRevision > state.Revision)
                    {
                        Log.StaleChangeSkipped(_logger, change.Collection, state.Revision, storedRevision);
                        continue;
                    }

                    string? json;
                    if (pendingCount == 0)
                    {
                        json = state.LocalValue;
                        // No local_hlc: with nothing pending, the fields' timestamps are the server state's.
                        tx.Documents.Put(scope, change.Collection, change.DocumentId, change.State.Span, state.Revision, json, null, 0);
                    }
                    else
                    {
                        var pending = tx.Outbox.Pending(scope, change.Collection, change.DocumentId);
                        var view = LocalView.Rebuild(JsonSerializer.Deserialize(change.State.Span, ProtocolJson.DocumentState), pending);
                        json = view.Value?.ToJson();
                        tx.Documents.Put(scope, change.Collection, change.DocumentId, change.State.Span, state.Revision, json, view.TimestampsJson(), pending.Count);
                    }

                    applied++;
                    if (!exists)
                    {
                        before = dropped.Remove((change.Collection, change.DocumentId), out var old) ? old : null;
                    }

                    if (Changed(before, json) is { } kind)
                    {
                        events.Add(new StoreChange(scope, change.Collection, change.DocumentId, kind, ChangeOrigin.Remote, json));
                    }
                }

                foreach (var ((collection, id), _) in dropped)
                {
                    events.Add(new StoreChange(scope, collection, id, ChangeKind.Delete, ChangeOrigin.Remote, null));
                }

                var opened = 0;
                var resolved = 0;
                for (var i = 0; i < (conflicts?.Count ?? 0); i++)
                {
                    var record = conflicts![i];
                    if (record.Status == ConflictStatus.Resolved)
                    {
                        // Counted only when it closes a conflict of the inbox: one resolved before this device saw it is news to no one.
                        if (tx.Conflicts.Delete(record.Id))
                        {
                            resolved++;
                            conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, InboxConflictStatus.Resolved)));
                        }
                    }
                    else
                    {
                        opened += tx.Conflicts.Get(record.Id) is null ? 1 : 0;
                        var resolving = tx.Outbox.HasPendingResolve(record.Id);
                        tx.Conflicts.Put(record, resolving, conflictJson is null ? default : conflictJson[i].Span);
                        conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, resolving ? InboxConflictStatus.Resolving : InboxConflictStatus.Open)));
                    }

                    Log.ConflictStored(_logger, record.Id, record.Collection, record.Status == ConflictStatus.Resolved ? "resolved" : "open");
                }

                tx.Replica.SetCursor(scope, cursor, reset, epoch);
                tx.Replica.SaveClock(_identity.Clock.Last);
                return (events, conflictEvents, applied, opened, resolved);
            },
            cancellationToken).ConfigureAwait(false);
        Log.PageApplied(_logger, scope, applied, conflicts?.Count ?? 0, cursor);
        _client.Changes.Publish(events);
        _client.ConflictChanges.Publish(conflictEvents);
        return (applied, opened, resolved);
    }

    private void CheckPage(string scope, IReadOnlyList<PageChange> changes, IReadOnlyList<ConflictRecord>? conflicts)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (!_client.HasScope(scope))
        {
            throw new ConvergeSyncException($"A page of scope '{scope}' arrived, which is not one of this client's scopes.");
        }

        foreach (var change in changes)
        {
            if (change.State.IsEmpty || _client.Limits.CheckName(change.Collection, "collection") is not null || !ValidId(change.DocumentId))
            {
                throw new ConvergeSyncException($"A page of scope '{scope}' holds a change without a valid collection, id and state.");
            }
        }

        foreach (var record in conflicts ?? [])
        {
            if (record is null || record.Scope != scope || string.IsNullOrEmpty(record.Id) || record.Fields is null
                || _client.Limits.CheckName(record.Collection, "collection") is not null || !ValidId(record.DocumentId))
            {
                throw new ConvergeSyncException($"A page of scope '{scope}' holds an invalid conflict record.");
            }
        }

        bool ValidId(string? id) => _client.Limits.CheckId(id) is null;
    }

    /// <summary>Rebuilds a document's local value as its stored server state with its still-pending mutations on top.</summary>
    public static void Rebuild(StoreTransaction tx, string scope, string collection, string id, List<StoreChange> events)
    {
        var row = tx.Documents.Get(scope, collection, id);
        if (row is null)
        {
            return;
        }

        var pending = tx.Outbox.Pending(scope, collection, id);
        var view = LocalView.Rebuild(row.ServerState, pending);
        var json = view.Value?.ToJson();

        // With nothing pending, the fields' timestamps are the server state's (no local_hlc), as a pull stores them.
        tx.Documents.Put(scope, collection, id, row.ServerStateJson, row.ServerRevision, json, pending.Count == 0 ? null : view.TimestampsJson(), pending.Count);
        if (Changed(row.LocalValue, json) is { } change)
        {
            events.Add(new StoreChange(scope, collection, id, change, ChangeOrigin.Remote, json));
        }
    }

    /// <summary>Rebuilds the documents of a scope whose mutations the server answered without a new revision; run once the scope's pull is done, so they rest on the latest server state.</summary>
    /// <remarks>The marks are stored with the push's results, so a round cut short before this rebuilds them at a later one.</remarks>
    public async Task RebuildStaleAsync(string scope, CancellationToken cancellationToken)
    {
        using (var connection = _client.Store.OpenRead())
        {
            if (!StoreReads.HasStale(connection, scope))
            {
                return;
            }
        }

        var (events, count) = await _client.Store.WriteAsync(
            tx =>
            {
                var events = new List<StoreChange>();
                var keys = tx.Documents.TakeStale(scope);
                foreach (var (collection, id) in keys)
                {
                    Rebuild(tx, scope, collection, id, events);
                }

                return (events, keys.Count);
            },
            cancellationToken).ConfigureAwait(false);
        Log.StaleRebuilt(_logger, scope, count);
        _client.Changes.Publish(events);
    }

    /// <summary>What a rebuild did to a document's local value, or <see langword="null"/> when the value is the same.</summary>
    private static ChangeKind? Changed(string? before, string? after)
    {
        if (string.Equals(before, after, StringComparison.Ordinal))
        {
            return null;
        }

        return after is null ? ChangeKind.Delete : ChangeKind.Put;
    }
}
