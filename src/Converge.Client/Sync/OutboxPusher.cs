using System.Text;
using System.Text.Json;
using Converge.Client.Storage;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Client.Sync;

/// <summary>
/// Pushes the outbox to the server in batches, one at a time, and applies the answers: acknowledged mutations leave the
/// outbox, rejected ones are dropped and their documents rebuilt.
/// </summary>
internal sealed class OutboxPusher
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

    private readonly ClientStore _store;
    private readonly ClientIdentity _identity;
    private readonly ChangeHub<StoreChange> _changes;
    private readonly ChangeHub<ConflictChangedEventArgs> _conflictChanges;
    private readonly int _batchSize;
    private readonly ILogger _logger;

    public OutboxPusher(ClientStore store, ClientIdentity identity, ChangeHub<StoreChange> changes, ChangeHub<ConflictChangedEventArgs> conflictChanges, int batchSize, ILogger logger)
    {
        _store = store;
        _identity = identity;
        _changes = changes;
        _conflictChanges = conflictChanges;
        _batchSize = batchSize;
        _logger = logger;
    }

    /// <summary>Pushes the outbox as it is when the call starts, in batches, through <paramref name="send"/> (HTTP, or the live channel).</summary>
    public async Task PushAsync(Func<byte[], CancellationToken, Task<PushResponse>> send, SyncRound round, CancellationToken cancellationToken)
    {
        long upTo;
        using (var connection = _store.OpenRead())
        {
            // Writes made while the round runs wait for the next round, so a busy app cannot keep a round going forever.
            upTo = StoreReads.LastOutboxId(connection);
        }

        var batchSize = _batchSize;
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
                    _identity.Clock.TryReceive(response.Clock, out _);
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
                    upTo = await _identity.RenewAsync(upTo, cancellationToken).ConfigureAwait(false);
                    after = 0;
                    continue;
                }
                catch (ConvergeSyncException e) when (e.IsScopeForbidden && e.Scope is { } refused && !round.IsForbidden(refused) && batch.Exists(row => row.Scope == refused))
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
                catch (Exception e) when (e is ConvergeSyncException or OperationCanceledException || ConvergeClient.IsNetworkFailure(e))
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
        using (var connection = _store.OpenRead())
        {
            rows = StoreReads.OutboxRows(connection, after, upTo, batchSize);
        }

        return rows.Count == 0 ? null : new PushBatch(rows, PushBody(rows));
    }

    /// <summary>Outbox rows and the push body that carries them.</summary>
    private sealed record PushBatch(List<OutboxRow> Rows, byte[] Body);

    /// <summary>Moves a refused scope's outbox mutations behind every other one, with new ids and timestamps.</summary>
    /// <remarks>
    /// Ids must keep growing in push order: the server applies each id of a client once and treats an id at or below the
    /// last applied as a retry. The timestamps move with the ids, because the server tells a retry from a reused id by them.
    /// </remarks>
    private Task<int> SetAsideAsync(string scope, CancellationToken cancellationToken) =>
        _store.WriteAsync(tx => tx.Outbox.MoveToEnd(scope, _identity.Clock.Now), cancellationToken);

    /// <summary>The body of a push: the outbox's mutations spliced in as stored, which is exactly how the protocol writes them.</summary>
    private byte[] PushBody(List<OutboxRow> batch)
    {
        Span<char> clock = stackalloc char[Protocol.HybridTimestamp.TextLength];
        _identity.Clock.Now().TryFormat(clock, out _);
        var clientId = _identity.ClientId;
        const string Start = "{\"client\":\"";
        const string Middle = "\",\"clock\":\"";
        const string Mutations = "\",\"mutations\":[";
        const string End = "]}";
        var utf8 = Encoding.UTF8;
        var length = Start.Length + clientId.Length + Middle.Length + clock.Length + Mutations.Length + End.Length + batch.Count - 1;
        foreach (var row in batch)
        {
            length += row.Json.Length;
        }

        var body = new byte[length];
        var at = utf8.GetBytes(Start, body);
        at += utf8.GetBytes(clientId, body.AsSpan(at));
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
    private async Task ApplyResultsAsync(List<OutboxRow> batch, long after, IReadOnlyList<MutationResult> results, SyncRound round, CancellationToken cancellationToken)
    {
        var (changes, conflictChanges) = await _store.WriteAsync(
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
                    PageApplier.Rebuild(tx, scope, collection, id, events);
                }

                tx.Replica.SaveClock(_identity.Clock.Last);
                return (events, conflictEvents);
            },
            cancellationToken).ConfigureAwait(false);
        _changes.Publish(changes);
        _conflictChanges.Publish(conflictChanges);

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
}
