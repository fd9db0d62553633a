using Converge.Client.Storage;
using Converge.Protocol;
using Microsoft.Extensions.Logging;

namespace Converge.Client;

/// <summary>This client as a replica: its id and its clock, which change together when the client takes a new id.</summary>
internal sealed class ClientIdentity
{
    private readonly ClientStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private volatile HybridClock _clock;
    private volatile string _clientId;

    public ClientIdentity(ClientStore store, TimeProvider time, ILogger logger)
    {
        _store = store;
        _time = time;
        _logger = logger;
        _clientId = ReplicaId.Format(store.ReplicaId);

        // The server is the authority on time: its clock is taken in however far ahead it is. The server defends
        // itself against this client's clock, not the other way round.
        _clock = new HybridClock(store.ReplicaId, time, store.Clock, TimeSpan.MaxValue);
    }

    /// <summary>Gets the replica id: 16 lowercase hex digits.</summary>
    public string ClientId => _clientId;

    /// <summary>Gets the client's clock; replaced, with the same last reading and the new node, when the client takes a new replica id.</summary>
    public HybridClock Clock => _clock;

    /// <summary>Takes a new replica id, keeping the clock's reading, and renumbers the whole outbox from 1 in order, in one transaction.</summary>
    /// <param name="upTo">The last mutation id of the round's push.</param>
    /// <param name="cancellationToken">Cancels before the transaction starts.</param>
    /// <returns>The new id of the round's last mutation.</returns>
    public async Task<long> RenewAsync(long upTo, CancellationToken cancellationToken)
    {
        var oldClock = _clock;
        var oldId = _clientId;
        try
        {
            (long Last, long Count, string NewId) renewed = await _store.WriteAsync(
                tx =>
                {
                    var replica = ReplicaId.NewId();
                    tx.Replica.SetReplicaId(replica);
                    var last = tx.Outbox.Renumber(upTo);

                    // Swapped under the write gate, so every later local write stamps with the new node; undone below if the
                    // transaction fails.
                    var clock = new HybridClock(replica, _time, _clock.Last, TimeSpan.MaxValue);
                    _clock = clock;
                    _clientId = ReplicaId.Format(replica);
                    tx.Replica.SaveClock(clock.Last);
                    return (last, _store.NextMutationId - 1, _clientId);
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
}
