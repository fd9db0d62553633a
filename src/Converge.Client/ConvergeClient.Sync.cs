using System.Net.Sockets;
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
    /// </remarks>
    /// <exception cref="InvalidOperationException">The client has no <see cref="ConvergeClientOptions.ServerUrl"/>.</exception>
    /// <exception cref="HttpRequestException">The server cannot be reached; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="TimeoutException">A request timed out; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="ConvergeSyncException">The server answered with an error or broke the protocol; <see cref="Status"/> is <see cref="SyncStatus.Error"/>.</exception>
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
                await PushAsync(http, round, token).ConfigureAwait(false);
                foreach (var scope in Scopes)
                {
                    await PullAsync(http, scope, round, token).ConfigureAwait(false);
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
            SetStatus(SyncStatus.UpToDate, null);
            return report;
        }
        finally
        {
            _syncGate.Release();
        }
    }

    private static bool IsNetworkFailure(Exception e) =>
        e is HttpRequestException or TimeoutException or SocketException or IOException;

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

    private async Task PushAsync(Sync.SyncHttp http, Round round, CancellationToken cancellationToken)
    {
        long upTo;
        using (var connection = Store.OpenRead())
        {
            // Writes made while the round runs wait for the next round, so a busy app cannot keep a round going forever.
            upTo = StoreReads.LastOutboxId(connection);
        }

        var batchSize = PushBatchSize;
        long after = 0;
        while (true)
        {
            List<Mutation> batch;
            using (var connection = Store.OpenRead())
            {
                batch = StoreReads.Outbox(connection, after, upTo, batchSize);
            }

            if (batch.Count == 0)
            {
                return;
            }

            Log.Pushing(_logger, batch.Count, batch[0].Id, batch[^1].Id);
            IReadOnlyList<MutationResult> results;
            try
            {
                var response = await http.PushAsync(new PushRequest { ClientId = ClientId, Clock = Clock.Now(), Mutations = batch }, cancellationToken).ConfigureAwait(false);
                CheckResults(batch, response);
                Clock.TryReceive(response.Clock, out _);
                results = response.Results;
            }
            catch (ConvergeSyncException e) when (e.ErrorCode is { } code && s_contentErrors.Contains(code))
            {
                if (batch.Count > 1)
                {
                    // The server's limits are lower than ours, or one mutation in the batch is refused: halve until the
                    // batches fit, or until the one mutation at fault is alone.
                    batchSize = Math.Max(1, batch.Count / 2);
                    Log.BatchHalved(_logger, batch.Count, code, batchSize);
                    continue;
                }

                // The server refuses this one mutation whatever the batch: left in the outbox it would block every later
                // write forever, so it is dropped as rejected, with the server's reason.
                results = [new MutationResult { Id = batch[0].Id, Status = MutationStatus.Rejected, Reason = e.Message }];
            }

            await ApplyResultsAsync(batch, results, round, cancellationToken).ConfigureAwait(false);
            after = batch[^1].Id;
            round.Progress(SyncPhase.Push, null);
        }
    }

    private static void CheckResults(List<Mutation> batch, PushResponse response)
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
    private async Task ApplyResultsAsync(List<Mutation> batch, IReadOnlyList<MutationResult> results, Round round, CancellationToken cancellationToken)
    {
        var byId = batch.ToDictionary(m => m.Id);
        var (changes, conflictChanges) = await Store.WriteAsync(
            tx =>
            {
                var touched = new Dictionary<(string Scope, string Collection, string Id), bool>();
                var conflictEvents = new List<ConflictChangedEventArgs>();
                foreach (var result in results)
                {
                    var mutation = byId[result.Id];
                    tx.RemoveFromOutbox(mutation.Id);
                    var key = (mutation.Scope, mutation.Collection, mutation.DocumentId);
                    var rejected = result.Status == MutationStatus.Rejected;
                    touched[key] = (touched.TryGetValue(key, out var before) && before) || rejected;
                    round.Pushed++;
                    if (result.Restamped is { } restamped)
                    {
                        round.Restamped++;
                        Log.MutationRestamped(_logger, mutation.Id, restamped);
                    }

                    if (!rejected)
                    {
                        continue;
                    }

                    round.Rejected.Add(new RejectedMutation(mutation.Id, mutation.Scope, mutation.Collection, mutation.DocumentId, mutation.Kind, result.Reason));
                    Log.MutationRejected(_logger, mutation.Id, mutation.Kind, mutation.Collection, result.Reason);
                    if (mutation.ConflictId is { } conflictId && !tx.HasPendingResolve(conflictId) && tx.GetConflict(conflictId) is { Resolving: true } conflict)
                    {
                        // The resolution was refused: the conflict waits for a person again.
                        tx.SetConflictResolving(conflictId, false);
                        conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(conflict.Record, InboxConflictStatus.Open)));
                    }
                }

                var events = new List<StoreChange>();
                foreach (var ((scope, collection, id), rebuild) in touched)
                {
                    var row = tx.GetDocument(scope, collection, id);
                    if (row is null)
                    {
                        continue;
                    }

                    var pending = tx.PendingMutations(scope, collection, id);
                    var view = rebuild ? LocalView.Rebuild(row.ServerState, pending) : LocalView.FromStored(row.LocalValue, row.LocalTimestamps);
                    tx.PutDocument(scope, collection, id, row.ServerState, view, pending.Count);
                    if (rebuild && Changed(row.LocalValue, view) is { } change)
                    {
                        events.Add(new StoreChange(scope, collection, id, change, ChangeOrigin.Remote, view.Value?.ToElement()));
                    }
                }

                tx.SaveClock(Clock.Last);
                return (events, conflictEvents);
            },
            cancellationToken).ConfigureAwait(false);
        Changes.Publish(changes);
        ConflictChanges.Publish(conflictChanges);
    }

    /// <summary>What a rebuild did to a document's local value, or <see langword="null"/> when the value is the same.</summary>
    private static ChangeKind? Changed(string? before, LocalView after)
    {
        var json = after.Value?.ToJson();
        if (string.Equals(before, json, StringComparison.Ordinal))
        {
            return null;
        }

        return json is null ? ChangeKind.Delete : ChangeKind.Put;
    }

    // ---- pull ----

    private async Task PullAsync(Sync.SyncHttp http, string scope, Round round, CancellationToken cancellationToken)
    {
        long cursor;
        using (var connection = Store.OpenRead())
        {
            cursor = StoreReads.Cursor(connection, scope);
        }

        while (true)
        {
            var page = await http.PullAsync(scope, cursor, PullPageSize, cancellationToken).ConfigureAwait(false);
            if (page.Scope != scope || page.Changes is null || page.Cursor < 0 || (!page.Reset && page.Cursor < cursor))
            {
                throw new ConvergeSyncException($"The server answered a pull of scope '{scope}' after {cursor} with a page of scope '{page.Scope}' ending at cursor {page.Cursor}.");
            }

            var empty = page.Changes.Count == 0 && (page.Conflicts?.Count ?? 0) == 0;
            if (page.HasMore && empty && !page.Reset && page.Cursor == cursor)
            {
                throw new ConvergeSyncException($"The server says scope '{scope}' has more changes after {cursor} but sent none.");
            }

            Clock.TryReceive(page.Clock, out _);
            var applied = await ApplyPageAsync(scope, page.Changes, page.Conflicts, page.Cursor, page.Reset, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Applies a page of changes of one scope, and its new cursor, in one transaction; then raises their events.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="changes">The documents' new server states.</param>
    /// <param name="conflicts">Conflict records created, changed or resolved.</param>
    /// <param name="cursor">The scope's cursor after the page: pass it only when every change up to it has been applied. The stored cursor never moves back, except on a reset.</param>
    /// <param name="reset">Whether the scope restarts from scratch: its documents without pending writes are dropped first.</param>
    /// <param name="cancellationToken">Cancels before the transaction starts.</param>
    /// <returns>How many documents and conflict records were applied.</returns>
    /// <remarks>
    /// Takes its page from any source (a pull, a live message), so it trusts nothing: names are checked, and a change
    /// older than the stored server state is skipped. Each document's local value is rebuilt as the new server state with
    /// the document's still-pending outbox mutations re-applied on top.
    /// </remarks>
    internal async Task<(int Documents, int Conflicts)> ApplyPageAsync(string scope, IReadOnlyList<DocumentChange> changes, IReadOnlyList<ConflictRecord>? conflicts, long cursor, bool reset, CancellationToken cancellationToken)
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
                    foreach (var (collection, id, value) in tx.DropSettledDocuments(scope))
                    {
                        dropped[(collection, id)] = value;
                    }

                    foreach (var conflictId in tx.DropSettledConflicts(scope))
                    {
                        conflictEvents.Add(new ConflictChangedEventArgs(conflictId));
                    }

                    Log.ScopeReset(_logger, scope, dropped.Count);
                }

                var events = new List<StoreChange>();
                var applied = 0;
                foreach (var change in changes)
                {
                    var row = tx.GetDocument(scope, change.Collection, change.DocumentId);
                    // A change older than the stored state is a late duplicate (a live message after a pull); a reset page is
                    // the server's word on the scope and applies whatever was stored.
                    if (!reset && row?.ServerState is { } stored && stored.Revision > change.State.Revision)
                    {
                        Log.StaleChangeSkipped(_logger, change.Collection, change.State.Revision, stored.Revision);
                        continue;
                    }

                    var pending = tx.PendingMutations(scope, change.Collection, change.DocumentId);
                    var view = LocalView.Rebuild(change.State, pending);
                    tx.PutDocument(scope, change.Collection, change.DocumentId, change.State, view, pending.Count);
                    applied++;
                    var before = row is not null ? row.LocalValue
                        : dropped.Remove((change.Collection, change.DocumentId), out var old) ? old : null;
                    if (Changed(before, view) is { } kind)
                    {
                        events.Add(new StoreChange(scope, change.Collection, change.DocumentId, kind, ChangeOrigin.Remote, view.Value?.ToElement()));
                    }
                }

                foreach (var ((collection, id), _) in dropped)
                {
                    events.Add(new StoreChange(scope, collection, id, ChangeKind.Delete, ChangeOrigin.Remote, null));
                }

                foreach (var record in conflicts ?? [])
                {
                    if (record.Status == ConflictStatus.Resolved)
                    {
                        if (tx.DeleteConflict(record.Id))
                        {
                            conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, InboxConflictStatus.Resolved)));
                        }
                    }
                    else
                    {
                        var resolving = tx.HasPendingResolve(record.Id);
                        tx.PutConflict(record, resolving);
                        conflictEvents.Add(new ConflictChangedEventArgs(new InboxConflict(record, resolving ? InboxConflictStatus.Resolving : InboxConflictStatus.Open)));
                    }

                    Log.ConflictStored(_logger, record.Id, record.Collection, record.Status == ConflictStatus.Resolved ? "resolved" : "open");
                }

                tx.SetCursor(scope, cursor, reset);
                tx.SaveClock(Clock.Last);
                return (events, conflictEvents, applied);
            },
            cancellationToken).ConfigureAwait(false);
        Log.PageApplied(_logger, scope, applied, conflicts?.Count ?? 0, cursor);
        Changes.Publish(events);
        ConflictChanges.Publish(conflictEvents);
        return (applied, conflicts?.Count ?? 0);
    }

    private void CheckPage(string scope, IReadOnlyList<DocumentChange> changes, IReadOnlyList<ConflictRecord>? conflicts)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (!_scopes.Contains(scope))
        {
            throw new ConvergeSyncException($"A page of scope '{scope}' arrived, which is not one of this client's scopes.");
        }

        foreach (var change in changes)
        {
            if (change?.State is null || Limits.CheckName(change.Collection, "collection") is not null || !ValidId(change.DocumentId))
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

        public void Progress(SyncPhase phase, string? scope) => progress?.Report(new SyncProgress(phase, scope, Pushed, Pulled));

        public SyncReport Report(TimeSpan duration) => new()
        {
            Pushed = Pushed,
            Pulled = Pulled,
            ConflictsReceived = Conflicts,
            Rejected = Rejected,
            Restamped = Restamped,
            Duration = duration,
        };
    }
}
