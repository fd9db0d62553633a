using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Converge.Client.Sync;
using Converge.Client.Storage;
using Converge.Protocol.Messages;

namespace Converge.Client;

public sealed partial class ConvergeClient
{
    /// <summary>The protocol errors for which the server refused a push whole because of what it carries.</summary>
    private static readonly HashSet<string> s_contentErrors = new(StringComparer.Ordinal)
    {
        ProtocolErrorCodes.InvalidMessage,
        ProtocolErrorCodes.TooDeep,
        ProtocolErrorCodes.DocumentTooLarge,
        ProtocolErrorCodes.BatchTooLarge,
        ProtocolErrorCodes.PayloadTooLarge,
    };

    private readonly Lock _statusLock = new();
    private SyncStatus _status = SyncStatus.Offline;
    private Exception? _lastError;

    /// <summary>Raised when <see cref="Status"/> changes, on the thread running the sync round.</summary>
    public event EventHandler<SyncStatusChangedEventArgs>? StatusChanged;

    /// <summary>Gets the sync status: the outcome of the last round, or <see cref="SyncStatus.Syncing"/> while one runs.</summary>
    /// <value><see cref="SyncStatus.Offline"/> until the first round succeeds. The status never blocks local writes.</value>
    public SyncStatus Status
    {
        get
        {
            lock (_statusLock)
            {
                return _status;
            }
        }
    }

    /// <summary>Gets the failure of the last sync round; <see langword="null"/> once a round succeeds.</summary>
    public Exception? LastError
    {
        get
        {
            lock (_statusLock)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Runs one sync round: pushes the outbox, then pulls every scope to the end.</summary>
    /// <param name="progress">Receives progress after each push batch and each pulled page.</param>
    /// <param name="cancellationToken">Cancels the round; what was already acknowledged or applied stays.</param>
    /// <returns>What the round did.</returns>
    /// <remarks>
    /// <para>
    /// Rounds never overlap: a call made while a round runs waits for it to end and then runs a round of its own, so a
    /// call always pushes the writes made before it.
    /// </para>
    /// <para>
    /// Every step is durable on its own: a pushed batch leaves the outbox when the server answers, and each pulled page
    /// is applied with its cursor in one transaction, so a round cut short (a crash, a lost connection) resumes where it
    /// stopped. The server applies each mutation id once, so a batch sent again is harmless.
    /// </para>
    /// <para>
    /// A scope the server refuses (403 <c>scope_forbidden</c>) does not fail the round: its writes are set aside in the
    /// outbox and sent again next round, the other scopes sync, and the report lists it in
    /// <see cref="SyncReport.ForbiddenScopes"/>, with <see cref="Status"/> <see cref="SyncStatus.Error"/>. When the server
    /// answers that this client reuses mutation ids (its store was restored or copied), the client takes a new
    /// <see cref="ClientId"/>, renumbers its outbox and pushes again in the same round.
    /// </para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">The client has no <see cref="ConvergeClientOptions.ServerUrl"/>.</exception>
    /// <exception cref="HttpRequestException">The server cannot be reached; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="TimeoutException">A request timed out; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="ConvergeSyncException">The server answered with an error (other than refusing some scopes) or broke the protocol; <see cref="Status"/> is <see cref="SyncStatus.Error"/>.</exception>
    public async Task<SyncReport> SyncAsync(IProgress<SyncProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var http = _http ?? throw new InvalidOperationException("This client has no ServerUrl: it works locally only.");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        var token = linked.Token;
        await _syncGate.WaitAsync(token).ConfigureAwait(false);
        try
        {
            var previous = Status;
            var previousError = LastError;
            SetStatus(SyncStatus.Syncing, previousError);
            Log.SyncStarted(_logger);
            var started = _time.GetTimestamp();
            var round = new Round(progress);
            try
            {
                await PushAsync(http.PushAsync, round, token).ConfigureAwait(false);
                foreach (var scope in Scopes)
                {
                    try
                    {
                        await PullAsync(http, scope, round, token).ConfigureAwait(false);
                    }
                    catch (ConvergeSyncException e) when (IsScopeForbidden(e))
                    {
                        // One scope the caller may not read must not keep the others from syncing.
                        Log.PullForbidden(_logger, scope);
                        round.Forbid(scope, e);
                    }

                    await RebuildStaleAsync(scope, token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                Log.SyncCancelled(_logger);
                SetStatus(previous, previousError);
                throw;
            }
            catch (Exception e) when (IsNetworkFailure(e))
            {
                Log.SyncOffline(_logger, e);
                SetStatus(SyncStatus.Offline, e);
                throw;
            }
            catch (Exception e)
            {
                Log.SyncFailed(_logger, e);
                SetStatus(SyncStatus.Error, e);
                throw;
            }

            var report = round.Report(_time.GetElapsedTime(started));
            Log.SyncCompleted(_logger, report.Duration, report.Pushed, report.Pulled, report.ConflictsReceived, report.Rejected.Count, report.Restamped);

            // Refused scopes do not fail the round (the others synced), but the status says not everything did.
            var forbidden = round.ForbiddenError();
            SetStatus(forbidden is null ? SyncStatus.UpToDate : SyncStatus.Error, forbidden);
            return report;
        }
        finally
        {
            _syncGate.Release();
        }
    }

    private static bool IsNetworkFailure(Exception e) =>
        e is HttpRequestException or TimeoutException or SocketException or IOException;

    private static bool IsScopeForbidden(ConvergeSyncException e) =>
        e.StatusCode == System.Net.HttpStatusCode.Forbidden && e.ErrorCode == ProtocolErrorCodes.ScopeForbidden;

    private void SetStatus(SyncStatus status, Exception? error)
    {
        SyncStatus previous;
        lock (_statusLock)
        {
            previous = _status;
            _status = status;
            _lastError = error;
        }

        if (previous == status)
        {
            return;
        }

        Log.StatusChanged(_logger, previous, status);
        Events.Raise(StatusChanged, this, new SyncStatusChangedEventArgs(previous, status, error), _logger);
    }

    // ---- push ----

    /// <summary>Pushes the outbox as it is when the call starts, in batches, through <paramref name="send"/> (HTTP, or the live channel).</summary>
    private async Task PushAsync(Func<byte[], CancellationToken, Task<PushResponse>> send, Round round, CancellationToken cancellationToken)
    {
        long upTo;
        using (var connection = Store.OpenRead())
        {
            // Writes made while the round runs wait for the next round, so a busy app cannot keep a round going forever.
            upTo = StoreReads.LastOutboxId(connection);
        }

        var batchSize = PushBatchSize;
        var renewed = false;
        long after = 0;

        // One push is at the server at a time, so a client's mutations are applied in id order. While it is there, the
        // next batch is read and encoded; once it is answered, the next one leaves before the answer is stored. A crash
        // between the two leaves the answered batch in the outbox, and the server takes it again as a retry.
        PushBatch? ready = null;
        Task<PushResponse>? inFlight = null;
        try
        {
            while (true)
            {
                var current = ready ?? ReadPushBatch(after, upTo, batchSize);
                ready = null;
                if (current is null)
                {
                    return;
                }

                var batch = current.Rows;
                Log.Pushing(_logger, batch.Count, batch[0].Id, batch[^1].Id);
                IReadOnlyList<MutationResult> results;
                try
                {
                    var sending = inFlight ?? send(current.Body, cancellationToken);
                    inFlight = null;
                    var next = ReadPushBatch(batch[^1].Id, upTo, batchSize);
                    var response = await sending.ConfigureAwait(false);
                    CheckResults(batch, response);
                    Clock.TryReceive(response.Clock, out _);
                    results = response.Results;
                    if (next is not null)
                    {
                        ready = next;
                        inFlight = send(next.Body, cancellationToken);
                    }
                }
                catch (ConvergeSyncException e) when (e.ErrorCode is { } code && s_contentErrors.Contains(code))
                {
                    if (batch.Count > 1)
                    {
                        // The server's limits are lower than ours, or one mutation in the batch is refused: halve until
                        // the batches fit, or until the one mutation at fault is alone.
                        batchSize = Math.Max(1, batch.Count / 2);
                        Log.BatchHalved(_logger, batch.Count, code, batchSize);
                        continue;
                    }

                    // The server refuses this one mutation whatever the batch: left in the outbox it would block every
                    // later write forever, so it is dropped as rejected, with the server's reason.
                    results = [new MutationResult { Id = batch[0].Id, Status = MutationStatus.Rejected, Reason = e.Message }];
                }
                catch (ConvergeSyncException e) when (e.ErrorCode == ProtocolErrorCodes.ClientIdReused && !renewed)
                {
                    // The store was restored from a backup or copied: another copy already spent these ids. Nothing was
                    // applied; as a new replica, with the outbox renumbered from 1, the same writes go through.
                    renewed = true;
                    upTo = await RenewClientIdAsync(upTo, cancellationToken).ConfigureAwait(false);
                    after = 0;
                    continue;
                }
                catch (ConvergeSyncException e) when (IsScopeForbidden(e) && e.Scope is { } refused && !round.IsForbidden(refused) && batch.Exists(row => row.Scope == refused))
                {
                    // The caller may not write this scope: its writes go behind every other, past this round's end, so
                    // the rest of the outbox still syncs; the next round sends them again.
                    var moved = await SetAsideAsync(refused, cancellationToken).ConfigureAwait(false);
                    Log.ScopeSetAside(_logger, refused, moved);
                    round.Forbid(refused, e);
                    continue;
                }

                await ApplyResultsAsync(batch, after, results, round, cancellationToken).ConfigureAwait(false);
                after = batch[^1].Id;
                round.Progress(SyncPhase.Push, null);
            }
        }
        finally
        {
            if (inFlight is not null)
            {
                // Storing an answer failed while the next push was out: its answer is not needed (the round ends with an
                // error and the next one pushes those mutations again, which the server takes as a retry), but it is
                // awaited so that nothing runs on after the round.
                try
                {
                    await inFlight.ConfigureAwait(false);
                }
                catch (Exception e) when (e is ConvergeSyncException or OperationCanceledException or HttpRequestException)
                {
                    Log.PushAbandoned(_logger, e);
                }
            }
        }
    }

    /// <summary>Reads the next push batch from the outbox and encodes its body, or returns null when none is left.</summary>
    private PushBatch? ReadPushBatch(long after, long upTo, int batchSize)
    {
        List<OutboxRow> rows;
        using (var connection = Store.OpenRead())
        {
            rows = StoreReads.OutboxRows(connection, after, upTo, batchSize);
        }

        return rows.Count == 0 ? null : new PushBatch(rows, PushBody(rows));
    }

    /// <summary>Outbox rows and the push body that carries them.</summary>
    private sealed record PushBatch(List<OutboxRow> Rows, byte[] Body);

    /// <summary>Takes a new replica id, keeping the clock's reading, and renumbers the whole outbox from 1 in order, in one transaction.</summary>
    /// <param name="upTo">The last mutation id of the round's push.</param>
    /// <param name="cancellationToken">Cancels before the transaction starts.</param>
    /// <returns>The new id of the round's last mutation.</returns>
    private async Task<long> RenewClientIdAsync(long upTo, CancellationToken cancellationToken)
    {
        var oldClock = _clock;
        var oldId = _clientId;
        try
        {
            (long Last, long Count, string NewId) renewed = await Store.WriteAsync(
                tx =>
                {
                    var replica = Protocol.ReplicaId.NewId();
                    tx.Replica.SetReplicaId(replica);
                    var last = tx.Outbox.Renumber(upTo);

                    // Swapped under the write gate, so every later local write stamps with the new node; undone below if the
                    // transaction fails.
                    var clock = new Protocol.HybridClock(replica, _time, _clock.Last, TimeSpan.MaxValue);
                    _clock = clock;
                    _clientId = Protocol.ReplicaId.Format(replica);
                    tx.Replica.SaveClock(clock.Last);
                    return (last, Store.NextMutationId - 1, _clientId);
                },
                cancellationToken).ConfigureAwait(false);
            Log.ClientIdRenewed(_logger, oldId, renewed.NewId, renewed.Count);
            return renewed.Last;
        }
        catch
        {
            _clock = oldClock;
            _clientId = oldId;
            throw;
        }
    }

    /// <summary>Moves a refused scope's outbox mutations behind every other one, with new ids and timestamps.</summary>
    /// <remarks>
    /// Ids must keep growing in push order: the server applies each id of a client once and treats an id at or below the
    /// last applied as a retry. The timestamps move with the ids, because the server tells a retry from a reused id by them.
    /// </remarks>
    private Task<int> SetAsideAsync(string scope, CancellationToken cancellationToken) =>
        Store.WriteAsync(tx => tx.Outbox.MoveToEnd(scope, Clock.Now), cancellationToken);

    /// <summary>The body of a push: the outbox's mutations spliced in as stored, which is exactly how the protocol writes them.</summary>
    private byte[] PushBody(List<OutboxRow> batch)
    {
        Span<char> clock = stackalloc char[Protocol.HybridTimestamp.TextLength];
        Clock.Now().TryFormat(clock, out _);
        const string Start = "{\"client\":\"";
        const string Middle = "\",\"clock\":\"";
        const string Mutations = "\",\"mutations\":[";
        const string End = "]}";
        var utf8 = Encoding.UTF8;
        var length = Start.Length + ClientId.Length + Middle.Length + clock.Length + Mutations.Length + End.Length + batch.Count - 1;
        foreach (var row in batch)
        {
            length += row.Json.Length;
        }

        var body = new byte[length];
        var at = utf8.GetBytes(Start, body);
        at += utf8.GetBytes(ClientId, body.AsSpan(at));
        at += utf8.GetBytes(Middle, body.AsSpan(at));
        at += utf8.GetBytes(clock, body.AsSpan(at));
        at += utf8.GetBytes(Mutations, body.AsSpan(at));
        for (var i = 0; i < batch.Count; i++)
        {
            if (i > 0)
            {
                body[at++] = (byte)',';
            }

            batch[i].Json.CopyTo(body, at);
            at += batch[i].Json.Length;
        }

        utf8.GetBytes(End, body.AsSpan(at));
        return body;
    }

    private static void CheckResults(List<OutboxRow> batch, PushResponse response)
    {
        if (response.Results is null || response.Results.Count != batch.Count)
        {
            throw new ConvergeSyncException($"The server answered a push of {batch.Count} mutations with {response.Results?.Count ?? 0} results.");
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (response.Results[i] is not { } result || result.Id != batch[i].Id || !Enum.IsDefined(result.Status))
            {
                throw new ConvergeSyncException($"The server's push result {i} does not answer mutation {batch[i].Id}.");
            }
        }
    }

    /// <summary>Drops answered mutations from the outbox; rebuilds the documents whose mutations were rejected.</summary>
    /// <remarks>The batch is every outbox row with an id in (<paramref name="after"/>, last id of the batch], so one statement removes it.</remarks>
    private async Task ApplyResultsAsync(List<OutboxRow> batch, long after, IReadOnlyList<MutationResult> results, Round round, CancellationToken cancellationToken)
    {
        var (changes, conflictChanges) = await Store.WriteAsync(
            tx =>
            {
                // Accepted writes change nothing locally until the pull brings the server's state: their documents only
                // count one pending mutation less. A rejected write's document is rebuilt below, pending count included.
                tx.Documents.SettlePending(after, batch[^1].Id);
                tx.Outbox.Remove(after, batch[^1].Id);
                var rejected = new HashSet<(string Scope, string Collection, string Id)>();
                var conflictEvents = new List<ConflictChangedEventArgs>();
                for (var i = 0; i < results.Count; i++)
                {
                    var result = results[i];
                    var row = batch[i];
                    var key = (row.Scope, row.Collection, row.DocumentId);
                    round.Pushed++;
                    if (result.Restamped is { } restamped)
                    {
                        round.Restamped++;
                        Log.MutationRestamped(_logger, row.Id, restamped);
                    }

                    if (result.Status != MutationStatus.Rejected)
                    {
                        if (result.Revision == 0)
                        {
                            // No new revision: the pull brings nothing for this write (the server kept its values, or had
                            // applied it before), so the document is rebuilt from its server state once the pull is done.
                            tx.Documents.MarkStale(row.Scope, row.Collection, row.DocumentId);
                            round.MarkedStale = true;
                        }

                        continue;
                    }

                    rejected.Add(key);
                    var mutation = JsonSerializer.Deserialize(row.Json, ProtocolJson.Mutation)!;
                    round.Rejected.Add(new RejectedMutation(mutation.Id, mutation.Scope, mutation.Collection, mutation.DocumentId, mutation.Kind, result.Reason));
                    Log.MutationRejected(_logger, mutation.Id, mutation.Kind, mutation.Collection, result.Reason);
                    if (row.ConflictId is { } conflictId && !PendingLater(batch, i, conflictId) && !tx.Outbox.HasPendingResolve(conflictId) && tx.Conflicts.Get(conflictId) is { Resolving: true } conflict)
                    {
                        // The resolution was refused: the conflict waits for a person again.
                        tx.Conflicts.SetResolving(conflictId, false);
                        conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(conflict.Record, InboxConflictStatus.Open)));
                    }
                }

                var events = new List<StoreChange>();
                foreach (var (scope, collection, id) in rejected)
                {
                    Rebuild(tx, scope, collection, id, events);
                }

                tx.Replica.SaveClock(Clock.Last);
                return (events, conflictEvents);
            },
            cancellationToken).ConfigureAwait(false);
        Changes.Publish(changes);
        ConflictChanges.Publish(conflictChanges);

        // A later mutation of the same batch that resolves the same conflict was in the outbox when this one was answered.
        static bool PendingLater(List<OutboxRow> batch, int index, string conflictId)
        {
            for (var j = index + 1; j < batch.Count; j++)
            {
                if (batch[j].ConflictId == conflictId)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>Rebuilds a document's local value as its stored server state with its still-pending mutations on top.</summary>
    private static void Rebuild(StoreTransaction tx, string scope, string collection, string id, List<StoreChange> events)
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
    internal async Task RebuildStaleAsync(string scope, CancellationToken cancellationToken)
    {
        using (var connection = Store.OpenRead())
        {
            if (!StoreReads.HasStale(connection, scope))
            {
                return;
            }
        }

        var (events, count) = await Store.WriteAsync(
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
        Changes.Publish(events);
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

    // ---- pull ----

    private async Task PullAsync(Sync.SyncHttp http, string scope, Round round, CancellationToken cancellationToken)
    {
        long cursor;
        string? epoch;
        using (var connection = Store.OpenRead())
        {
            (cursor, epoch) = StoreReads.CursorAndEpoch(connection, scope);
        }

        var newEpoch = false;
        var restart = false;
        while (true)
        {
            using var page = await http.PullAsync(scope, cursor, PullPageSize, cancellationToken).ConfigureAwait(false);
            if (page.Scope != scope || page.Cursor < 0 || (!page.Reset && page.Cursor < cursor))
            {
                throw new ConvergeSyncException($"The server answered a pull of scope '{scope}' after {cursor} with a page of scope '{page.Scope}' ending at cursor {page.Cursor}.");
            }

            if (page.Epoch is { } pageEpoch && epoch is not null && !string.Equals(pageEpoch, epoch, StringComparison.Ordinal) && cursor > 0)
            {
                // The server's store is another history (restored from a backup): the cursor means nothing there, and the
                // documents held may be gone or different. Downloaded again from 0 as after a reset, keeping the outbox.
                if (newEpoch)
                {
                    throw new ConvergeSyncException($"The server changed the epoch of scope '{scope}' again while it was downloaded anew.");
                }

                Log.EpochChanged(_logger, scope, epoch, pageEpoch);
                newEpoch = restart = true;
                epoch = pageEpoch;
                cursor = 0;
                continue;
            }

            var empty = page.Changes.Count == 0 && (page.Conflicts?.Count ?? 0) == 0;
            if (page.HasMore && empty && !page.Reset && page.Cursor == cursor)
            {
                throw new ConvergeSyncException($"The server says scope '{scope}' has more changes after {cursor} but sent none.");
            }

            Clock.TryReceive(page.Clock, out _);
            var applied = await ApplyRawPageAsync(scope, page.Changes, page.Conflicts, page.Cursor, page.Reset || restart, cancellationToken, page.ConflictJson, page.Epoch, forgetServerStates: restart).ConfigureAwait(false);
            restart = false;
            epoch = page.Epoch ?? epoch;
            round.Pulled += applied.Documents;
            round.Conflicts += applied.Conflicts;
            round.Progress(SyncPhase.Pull, scope);
            cursor = page.Cursor;
            if (!page.HasMore)
            {
                return;
            }
        }
    }

    /// <summary>Applies a page of changes given as states, for callers that hold <see cref="DocumentChange"/>s rather than the server's JSON.</summary>
    internal Task<(int Documents, int Conflicts)> ApplyPageAsync(string scope, IReadOnlyList<DocumentChange> changes, IReadOnlyList<ConflictRecord>? conflicts, long cursor, bool reset, CancellationToken cancellationToken)
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

        return ApplyRawPageAsync(scope, raw, conflicts, cursor, reset, cancellationToken);
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
    internal async Task<(int Documents, int Conflicts)> ApplyRawPageAsync(string scope, IReadOnlyList<PageChange> changes, IReadOnlyList<ConflictRecord>? conflicts, long cursor, bool reset, CancellationToken cancellationToken, IReadOnlyList<ReadOnlyMemory<byte>>? conflictJson = null, string? epoch = null, bool forgetServerStates = false)
    {
        ThrowIfDisposed();
        CheckPage(scope, changes, conflicts);
        var (events, conflictEvents, applied) = await Store.WriteAsync(
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

                for (var i = 0; i < (conflicts?.Count ?? 0); i++)
                {
                    var record = conflicts![i];
                    if (record.Status == ConflictStatus.Resolved)
                    {
                        if (tx.Conflicts.Delete(record.Id))
                        {
                            conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, InboxConflictStatus.Resolved)));
                        }
                    }
                    else
                    {
                        var resolving = tx.Outbox.HasPendingResolve(record.Id);
                        tx.Conflicts.Put(record, resolving, conflictJson is null ? default : conflictJson[i].Span);
                        conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, resolving ? InboxConflictStatus.Resolving : InboxConflictStatus.Open)));
                    }

                    Log.ConflictStored(_logger, record.Id, record.Collection, record.Status == ConflictStatus.Resolved ? "resolved" : "open");
                }

                tx.Replica.SetCursor(scope, cursor, reset, epoch);
                tx.Replica.SaveClock(Clock.Last);
                return (events, conflictEvents, applied);
            },
            cancellationToken).ConfigureAwait(false);
        Log.PageApplied(_logger, scope, applied, conflicts?.Count ?? 0, cursor);
        Changes.Publish(events);
        ConflictChanges.Publish(conflictEvents);
        return (applied, conflicts?.Count ?? 0);
    }

    private void CheckPage(string scope, IReadOnlyList<PageChange> changes, IReadOnlyList<ConflictRecord>? conflicts)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (!_scopes.Contains(scope))
        {
            throw new ConvergeSyncException($"A page of scope '{scope}' arrived, which is not one of this client's scopes.");
        }

        foreach (var change in changes)
        {
            if (change.State.IsEmpty || Limits.CheckName(change.Collection, "collection") is not null || !ValidId(change.DocumentId))
            {
                throw new ConvergeSyncException($"A page of scope '{scope}' holds a change without a valid collection, id and state.");
            }
        }

        foreach (var record in conflicts ?? [])
        {
            if (record is null || record.Scope != scope || string.IsNullOrEmpty(record.Id) || record.Fields is null
                || Limits.CheckName(record.Collection, "collection") is not null || !ValidId(record.DocumentId))
            {
                throw new ConvergeSyncException($"A page of scope '{scope}' holds an invalid conflict record.");
            }
        }

        bool ValidId(string? id) => Limits.CheckId(id) is null;
    }

    /// <summary>The tallies of one sync round.</summary>
    private sealed class Round(IProgress<SyncProgress>? progress)
    {
        public int Pushed { get; set; }

        public int Pulled { get; set; }

        public int Conflicts { get; set; }

        public int Restamped { get; set; }

        public List<RejectedMutation> Rejected { get; } = [];

        public List<string> ForbiddenScopes { get; } = [];

        /// <summary>Gets or sets whether a push answer left a document to rebuild from its server state.</summary>
        public bool MarkedStale { get; set; }

        private ConvergeSyncException? FirstForbidden { get; set; }

        public bool IsForbidden(string scope) => ForbiddenScopes.Contains(scope);

        public void Forbid(string scope, ConvergeSyncException error)
        {
            FirstForbidden ??= error;
            if (!IsForbidden(scope))
            {
                ForbiddenScopes.Add(scope);
            }
        }

        /// <summary>The round's error when the server refused scopes: the server's own when it refused one.</summary>
        public ConvergeSyncException? ForbiddenError() => ForbiddenScopes.Count switch
        {
            0 => null,
            1 => FirstForbidden,
            _ => new ConvergeSyncException(
                $"The server refused scopes {string.Join(", ", ForbiddenScopes.Select(s => $"'{s}'"))}; their writes wait in the outbox and the other scopes synced.",
                System.Net.HttpStatusCode.Forbidden,
                ProtocolErrorCodes.ScopeForbidden,
                ForbiddenScopes[0]),
        };

        public void Progress(SyncPhase phase, string? scope) => progress?.Report(new SyncProgress(phase, scope, Pushed, Pulled));

        public SyncReport Report(TimeSpan duration) => new()
        {
            Pushed = Pushed,
            Pulled = Pulled,
            ConflictsReceived = Conflicts,
            Rejected = Rejected,
            Restamped = Restamped,
            ForbiddenScopes = [.. ForbiddenScopes],
            Duration = duration,
        };
    }
}
