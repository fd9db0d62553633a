using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Live;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Engine;

/// <summary>Applies pushes: each in one store transaction, idempotent per client, under the collections' merge rules, the clock defence and the caps on open conflicts.</summary>
/// <remarks>
/// A push reads every document it touches once, merges its mutations in order, and writes each changed document once,
/// with the scopes' new revision counters and the client's progress, in the same transaction; then it hands the
/// commit to the live connections.
/// </remarks>
internal sealed class PushApplier
{
    private const string UnknownConflict = "The conflict to resolve does not exist in this document.";

    private readonly ISyncStore _store;
    private readonly ConvergeServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly LiveHub? _live;
    private readonly string _nodeId;

    public PushApplier(ISyncStore store, ConvergeServerOptions options, TimeProvider time, ILogger logger, ServerMetrics metrics, LiveHub? live, string nodeId)
    {
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _live = live;
        _nodeId = nodeId;
    }

    /// <summary>Applies a validated, authorized push in one store transaction.</summary>
    /// <param name="request">The push, already checked against the limits.</param>
    /// <param name="principal">The stable key of the caller, which scopes its clients' mutation ids.</param>
    /// <param name="formerPrincipals">The keys the caller had in a store made by an earlier version, as migrated; its client's progress is taken from them when it has none under <paramref name="principal"/>.</param>
    /// <param name="clock">The server's clock.</param>
    /// <param name="epoch">The store's epoch, which live changes carry.</param>
    /// <param name="cancellationToken">Stops the push before it commits.</param>
    /// <returns>The response: one result per mutation.</returns>
    public async Task<PushResponse> ApplyAsync(PushRequest request, string principal, IReadOnlyList<string> formerPrincipals, HybridClock clock, string? epoch, CancellationToken cancellationToken)
    {
        if (!ReplicaId.TryParse(request.ClientId, out var writer))
        {
            throw new ArgumentException("The client id is not a replica id.", nameof(request));
        }

        var mutations = request.Mutations;
        var results = new MutationResult[mutations.Count];
        var counts = new int[ServerMetrics.StatusCount];
        var restamped = 0;
        var now = _time.GetUtcNow();
        IReadOnlyList<ConflictRecord> opened = [];
        List<string>? resolvedIds = null;
        PushResponse response;
        var transaction = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            var progress = await transaction.ReadClientProgressAsync(principal, request.ClientId, cancellationToken).ConfigureAwait(false);
            if (progress.LastMutationId == 0 && formerPrincipals.Count > 0)
            {
                // A store from before keys had namespaces: the device's progress may still be under its old key, and a
                // push whose answer was lost across the upgrade must stay a duplicate. It is written under the new key below.
                progress = await transaction.ReadFormerClientProgressAsync(formerPrincipals, request.ClientId, cancellationToken).ConfigureAwait(false);
            }

            var last = progress.LastMutationId;
            foreach (var m in mutations)
            {
                if (m.Id <= last && !IsRetry(progress, m))
                {
                    // A retry carries the timestamp it had; a newer one under an applied id is another write reusing it.
                    throw new ClientIdReusedException(
                        $"Mutation {m.Id} reuses an id this client already used, with another timestamp: the client's store was restored or copied. Take a new client id and push again.");
                }
            }

            // Every scope's counter first, in name order. On a store where a counter is a locked row, pushes to the same
            // scope commit one after the other in revision order, and two pushes never wait for each other crosswise.
            var scopes = new Dictionary<string, ScopeCounter>(StringComparer.Ordinal);
            foreach (var scope in mutations.Where(m => m.Id > last).Select(m => m.Scope).Distinct().Order(StringComparer.Ordinal))
            {
                scopes.Add(scope, new ScopeCounter(await transaction.ReadScopeRevisionAsync(scope, cancellationToken).ConfigureAwait(false)));
            }

            var keys = new List<DocumentKey>(mutations.Count);
            var seen = new HashSet<DocumentKey>(mutations.Count);
            foreach (var m in mutations)
            {
                var key = new DocumentKey(m.Scope, m.Collection, m.DocumentId);
                if (m.Id > last && seen.Add(key))
                {
                    keys.Add(key);
                }
            }

            var documents = new Dictionary<DocumentKey, DocumentState>(keys.Count);
            if (keys.Count > 0)
            {
                await transaction.ReadDocumentsAsync(keys, documents, cancellationToken).ConfigureAwait(false);
            }

            // Only the final state of each document is written, once, at the end of the batch.
            var changed = new HashSet<DocumentKey>();
            var conflicts = new PushConflicts(transaction, _options, principal, request.ClientId);
            var applied = progress;
            List<AppliedMutation>? appliedNow = null;
            clock.TryReceive(request.Clock, out _);
            for (var i = 0; i < mutations.Count; i++)
            {
                var m = mutations[i];
                if (m.Id <= last)
                {
                    results[i] = new MutationResult { Id = m.Id, Status = MutationStatus.Duplicate };
                    counts[(int)MutationStatus.Duplicate]++;
                    continue;
                }

                applied = new ClientProgress(m.Id, m.Hlc);
                (appliedNow ??= []).Add(new AppliedMutation(m.Id, m.Hlc));
                HybridTimestamp? restamp = null;
                if (!clock.TryReceive(m.Hlc, out _))
                {
                    // A device whose clock runs ahead must not win every later conflict: its write takes the server's time.
                    restamp = clock.Now();
                    m = m with { Hlc = restamp.Value };
                    restamped++;
                }

                var key = new DocumentKey(m.Scope, m.Collection, m.DocumentId);
                var counter = scopes[m.Scope];

                documents.TryGetValue(key, out var current);
                MutationResult result;
                if (m.Kind == MutationKind.Resolve)
                {
                    var conflict = conflicts.Pending(m.ConflictId!) ?? await transaction.ReadConflictAsync(m.ConflictId!, cancellationToken).ConfigureAwait(false);
                    if (conflict is null || conflict.Scope != m.Scope || conflict.Collection != m.Collection || conflict.DocumentId != m.DocumentId)
                    {
                        result = new MutationResult { Id = m.Id, Status = MutationStatus.Rejected, Reason = UnknownConflict };
                    }
                    else if (conflict.Status == ConflictStatus.Open)
                    {
                        var outcome = DocumentMerge.ApplyResolution(current, m.Fields, m.Remove, m.Hlc, writer, counter.Next);
                        var revision = Record(outcome, key, counter, documents, changed);
                        var resolved = conflict with { Status = ConflictStatus.Resolved, Resolution = "edited", Revision = counter.Take() };
                        conflicts.Resolved(conflict.Id, conflict.Scope);
                        await transaction.WriteConflictAsync(resolved, now, null, cancellationToken).ConfigureAwait(false);
                        counter.Conflicts.Add(resolved);
                        (resolvedIds ??= []).Add(conflict.Id);
                        result = new MutationResult { Id = m.Id, Status = outcome.Status, Revision = revision, Reason = outcome.Reason };
                    }
                    else
                    {
                        // Someone resolved it first: the values still count, as an ordinary edit under the collection's rules.
                        result = m.Fields is { Count: > 0 } || m.Remove is { Count: > 0 }
                            ? await ApplyMutationAsync(m with { Kind = MutationKind.Patch, ConflictId = null }, current, key, writer, counter, documents, changed, conflicts, now, cancellationToken).ConfigureAwait(false)
                            : new MutationResult { Id = m.Id, Status = MutationStatus.Applied };
                    }
                }
                else
                {
                    result = await ApplyMutationAsync(m, current, key, writer, counter, documents, changed, conflicts, now, cancellationToken).ConfigureAwait(false);
                }

                results[i] = restamp is null ? result : result with { Restamped = restamp };
                counts[(int)result.Status]++;
            }

            opened = conflicts.Opened;
            foreach (var record in conflicts.Records)
            {
                await transaction.WriteConflictAsync(record, null, principal, cancellationToken).ConfigureAwait(false);
                scopes[record.Scope].Conflicts.Add(record);
            }

            foreach (var key in changed)
            {
                var state = documents[key];
                await transaction.WriteDocumentAsync(key, state, state.Deleted ? now : null, cancellationToken).ConfigureAwait(false);
            }

            foreach (var (scope, counter) in scopes)
            {
                if (counter.Dirty)
                {
                    await transaction.WriteScopeRevisionAsync(scope, counter.Revision, cancellationToken).ConfigureAwait(false);
                }
            }

            // Only this push's mutations: a retry resends the push whose answer was lost, so the window never has to grow
            // with the client's history, and a one-mutation push writes one entry. A push of duplicates only still marks
            // the record used, so compaction keeps it while the client is around.
            await transaction.WriteClientProgressAsync(
                principal,
                request.ClientId,
                applied.LastMutationId > last ? applied with { Recent = appliedNow! } : progress,
                now,
                cancellationToken).ConfigureAwait(false);

            response = new PushResponse { Clock = clock.Now(), Results = results };
            await transaction.WriteClockAsync(response.Clock, cancellationToken).ConfigureAwait(false);
            if (_store is ICommitFeed feed)
            {
                foreach (var (scope, counter) in scopes)
                {
                    if (counter.Dirty)
                    {
                        await feed.AnnounceAsync(transaction, new CommitNotice { Node = _nodeId, Scope = scope, After = counter.Start, Cursor = counter.Revision }, cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);

            // Still inside the transaction's turn, so live clients get commits in commit order.
            PublishPush(scopes, changed, documents, response.Clock, epoch);
        }

        _metrics.Pushes.Add(1);
        _metrics.RecordMutations(counts);
        foreach (var (id, collection, scope) in opened.Select(r => (r.Id, r.Collection, r.Scope)))
        {
            Log.ConflictOpened(_logger, id, collection, scope);
        }

        foreach (var id in resolvedIds ?? [])
        {
            _metrics.ConflictsResolved.Add(1);
            Log.ConflictResolved(_logger, id, "edited");
        }

        if (restamped > 0)
        {
            Log.MutationsRestamped(_logger, request.ClientId, restamped, clock.MaxDrift);
        }

        Log.PushApplied(
            _logger,
            request.ClientId,
            mutations.Count,
            counts[(int)MutationStatus.Applied],
            counts[(int)MutationStatus.Merged],
            counts[(int)MutationStatus.Conflict],
            counts[(int)MutationStatus.Rejected],
            counts[(int)MutationStatus.Duplicate]);
        return response;
    }

    private async ValueTask<MutationResult> ApplyMutationAsync(
        Mutation m,
        DocumentState? current,
        DocumentKey key,
        ulong writer,
        ScopeCounter counter,
        Dictionary<DocumentKey, DocumentState> documents,
        HashSet<DocumentKey> changed,
        PushConflicts conflicts,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var rules = _options.GetRules(m.Collection);
        MergeOutcome outcome;
        try
        {
            outcome = DocumentMerge.Apply(current, m, writer, counter.Next, rules);
        }
        catch (Exception e) when (rules.Policy == ConflictPolicy.Custom && e is not OperationCanceledException)
        {
            // A resolver that throws must not make the push fail forever: the client would retry it without end.
            Log.ResolverFailed(_logger, e, m.Collection);
            return new MutationResult { Id = m.Id, Status = MutationStatus.Rejected, Reason = "The collection's custom conflict resolver failed." };
        }

        if (outcome.Status == MutationStatus.Rejected)
        {
            return new MutationResult { Id = m.Id, Status = MutationStatus.Rejected, Reason = outcome.Reason };
        }

        // Each mutation is bounded, but a document could still grow without end one field at a time.
        if (outcome.Changed && _options.Limits.CheckState(outcome.State) is { } tooLarge)
        {
            return new MutationResult { Id = m.Id, Status = MutationStatus.Rejected, Reason = tooLarge.Message };
        }

        ConflictRecord? joined = null;
        var contested = outcome.ConflictFields is { Count: > 0 };
        if (contested)
        {
            // Before anything of the mutation applies: past a cap on open conflicts, none of it does.
            (joined, var refusal) = await conflicts.PrepareAsync(key, cancellationToken).ConfigureAwait(false);
            if (refusal is not null)
            {
                return new MutationResult { Id = m.Id, Status = MutationStatus.Rejected, Reason = refusal };
            }
        }

        var revision = Record(outcome, key, counter, documents, changed);
        string? conflictId = null;
        if (contested)
        {
            conflictId = conflicts.Add(key, joined, outcome.ConflictFields!, m.Id, counter.Take, now).Id;
        }

        return new MutationResult { Id = m.Id, Status = outcome.Status, Revision = revision, ConflictId = conflictId, Reason = outcome.Reason };
    }

    /// <summary>Takes the revision the outcome was computed with when the document changed.</summary>
    /// <returns>The document's new revision, or 0 when it did not change.</returns>
    private static long Record(MergeOutcome outcome, DocumentKey key, ScopeCounter counter, Dictionary<DocumentKey, DocumentState> documents, HashSet<DocumentKey> changed)
    {
        if (!outcome.Changed)
        {
            return 0;
        }

        var revision = counter.Take();
        documents[key] = outcome.State;
        changed.Add(key);
        return revision;
    }

    /// <summary>Whether a mutation whose id was applied already is that same mutation sent again.</summary>
    /// <remarks>Within the window of recent mutations its timestamp must be the one applied under its id; older ones must not be newer than the last applied.</remarks>
    private static bool IsRetry(ClientProgress progress, Mutation m)
    {
        var recent = progress.Recent;
        if (recent.Count > 0 && m.Id >= recent[0].Id)
        {
            var lo = 0;
            var hi = recent.Count - 1;
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                if (recent[mid].Id == m.Id)
                {
                    return recent[mid].Hlc == m.Hlc;
                }

                if (recent[mid].Id < m.Id)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            return false; // an id inside the window that was never applied: not a retry of anything
        }

        return m.Hlc <= progress.LastHlc;
    }

    /// <summary>Hands a committed push's changes, scope by scope, to the live connections that follow them.</summary>
    private void PublishPush(Dictionary<string, ScopeCounter> scopes, HashSet<DocumentKey> changed, Dictionary<DocumentKey, DocumentState> documents, HybridTimestamp clock, string? epoch)
    {
        if (_live is not { } live)
        {
            return;
        }

        foreach (var (scope, counter) in scopes)
        {
            if (!counter.Dirty || !live.IsFollowed(scope))
            {
                continue;
            }

            var changes = new List<DocumentChange>();
            foreach (var key in changed)
            {
                if (key.Scope == scope)
                {
                    changes.Add(new DocumentChange { Collection = key.Collection, DocumentId = key.Id, State = documents[key] });
                }
            }

            live.Publish(scope, counter.Start, counter.Revision, changes, counter.Conflicts, clock, epoch);
        }
    }

    /// <summary>A scope's revision counter during one push.</summary>
    private sealed class ScopeCounter(long revision)
    {
        /// <summary>Gets the scope's revision before the push.</summary>
        public long Start { get; } = revision;

        /// <summary>Gets the conflict records the push opened or resolved in the scope.</summary>
        public List<ConflictRecord> Conflicts { get; } = [];

        public long Revision { get; private set; } = revision;

        public bool Dirty { get; private set; }

        /// <summary>Gets the revision the next change would take.</summary>
        public long Next => Revision + 1;

        public long Take()
        {
            Dirty = true;
            return ++Revision;
        }
    }
}

/// <summary>A push reuses mutation ids the server already applied for its client, with other timestamps.</summary>
internal sealed class ClientIdReusedException(string message) : Exception(message);
