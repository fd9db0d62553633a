using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Converge.Server.Live;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Engine;

/// <summary>The sync logic: applies checked pushes, answers pulls with cursors and resets, resolves conflicts, compacts.</summary>
/// <remarks>
/// Works with any <see cref="ISyncStore"/>: the store only reads and writes, while the merge rules, the clock defence,
/// idempotency and revision allocation live here, so another store gets the same behaviour. The engine opens the store
/// and owns the server's clock and the store's epoch; pushes (<see cref="PushApplier"/>), pulls (<see cref="PullReader"/>)
/// and resolutions (<see cref="ConflictResolver"/>) are each done by a class of their own.
/// </remarks>
internal sealed class SyncEngine
{
    private readonly ISyncStore _store;
    private readonly ConvergeServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly SemaphoreSlim _initLock = new(1, 1);
    private readonly PushApplier _push;
    private readonly PullReader _pull;
    private readonly ConflictResolver _resolver;
    private volatile HybridClock? _clock;
    private string? _epoch;

    public SyncEngine(ISyncStore store, ConvergeServerOptions options, TimeProvider time, ILogger logger, ServerMetrics metrics, LiveHub? live = null)
    {
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _push = new PushApplier(store, options, time, logger, metrics, live, NodeId);
        _pull = new PullReader(store, options, logger, metrics);
        _resolver = new ConflictResolver(store, time, logger, metrics, live, NodeId);
    }

    /// <summary>Gets the id of this server process among the nodes that share its store: its commits' notices carry it.</summary>
    public string NodeId { get; } = Guid.NewGuid().ToString("N");

    /// <summary>Gets the server's hybrid clock.</summary>
    /// <exception cref="InvalidOperationException">The engine is not initialized.</exception>
    public HybridClock Clock => _clock ?? throw new InvalidOperationException("The Converge server is not initialized.");

    /// <summary>Opens the store and restores the server's clock, once.</summary>
    public async ValueTask EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        if (_clock is not null)
        {
            return;
        }

        await _initLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_clock is not null)
            {
                return;
            }

            // Before the store does anything: a store built for another Converge.Server is refused with a clear message.
            StoreContractCheck.Verify(_store);
            await _store.InitializeAsync(cancellationToken).ConfigureAwait(false);
            var last = await _store.ReadClockAsync(cancellationToken).ConfigureAwait(false);
            // A node id of its own for each server process: several nodes over one store never stamp the same
            // timestamp, and the clock still never goes back before the last one any node saved.
            var clock = new HybridClock(ReplicaId.NewId(), _time, last, _options.MaxClockDrift);
            if (last is null)
            {
                var transaction = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    await transaction.WriteClockAsync(clock.Last, cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            // The epoch changes only while the server is stopped (a restore), so it is read once.
            _epoch = await _store.ReadEpochAsync(cancellationToken).ConfigureAwait(false);
            _clock = clock;
            // A new store has no timestamp yet: say so rather than print a zero one.
            Log.ServerReady(_logger, ReplicaId.Format(clock.Node), last is null ? "none yet (a new store)" : clock.Last.ToString());
        }
        finally
        {
            _initLock.Release();
        }
    }

    /// <summary>Saves the clock's last timestamp, so a restart never goes back before a timestamp this server handed out.</summary>
    public async Task SaveClockAsync(CancellationToken cancellationToken)
    {
        if (_clock is not { } clock)
        {
            return;
        }

        var transaction = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            await transaction.WriteClockAsync(clock.Last, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Applies a validated, authorized push in one store transaction.</summary>
    /// <param name="request">The push, already checked against the limits.</param>
    /// <param name="principal">The stable key of the caller, which scopes its clients' mutation ids.</param>
    /// <param name="formerPrincipals">The keys the caller had in a store made by an earlier version, as migrated; its client's progress is taken from them when it has none under <paramref name="principal"/>.</param>
    /// <param name="cancellationToken">Stops the push before it commits.</param>
    /// <returns>The response: one result per mutation.</returns>
    public async Task<PushResponse> PushAsync(PushRequest request, string principal, IReadOnlyList<string> formerPrincipals, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _push.ApplyAsync(request, principal, formerPrincipals, Clock, _epoch, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a page of a scope's changes after a cursor; a cursor that no longer holds answers a reset (<see cref="PullReader.ReadAsync"/>).</summary>
    /// <param name="scope">The scope, already authorized.</param>
    /// <param name="after">The client's cursor: 0 to start, or the cursor of its last page.</param>
    /// <param name="limit">The most changes to return.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The page.</returns>
    public async Task<PullPage> PullAsync(string scope, long after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(after);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _pull.ReadAsync(scope, after, limit, Clock, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a page of the open conflicts of a scope, within <see cref="ConvergeServerOptions.MaxPageBytes"/>.</summary>
    public async Task<ConflictPage> GetOpenConflictsAsync(string scope, long after, int limit, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _store.ReadOpenConflictsAsync(scope, after, limit, _options.MaxPageBytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a conflict, whatever its scope; the caller checks access.</summary>
    public async Task<ConflictRecord?> FindConflictAsync(string id, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _store.ReadConflictAsync(id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Resolves an open conflict: keeps the server's values, writes the client's, or writes edited values.</summary>
    /// <param name="id">The conflict's id.</param>
    /// <param name="scope">The scope the caller was authorized for; a conflict elsewhere is not found.</param>
    /// <param name="choice">The choice.</param>
    /// <param name="fields">The edited values, for <see cref="ResolveChoice.Edited"/>, already checked against the conflict's fields.</param>
    /// <param name="cancellationToken">Stops the resolution before it commits.</param>
    /// <returns>The resolved record; the record as it is when it was already resolved; <see langword="null"/> when not found.</returns>
    public async Task<ConflictRecord?> ResolveAsync(string id, string scope, ResolveChoice choice, IReadOnlyDictionary<string, JsonElement>? fields, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _resolver.ResolveAsync(id, scope, choice, fields, Clock, _epoch, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes tombstones and resolved conflicts older than the retention, and client progress records unused for longer than the client retention.</summary>
    public async Task<CompactionResult> CompactAsync(CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var cutoff = now - _options.TombstoneRetention;
        var clientsCutoff = now - _options.ClientRetention;
        var result = await _store.CompactAsync(cutoff, clientsCutoff, cancellationToken).ConfigureAwait(false);
        _metrics.TombstonesRemoved.Add(result.TombstonesRemoved);
        Log.Compacted(_logger, result.TombstonesRemoved, result.ConflictsRemoved, cutoff, result.ScopesAffected, result.ItemsMoved);
        Log.ClientsCompacted(_logger, result.ClientsRemoved, clientsCutoff);
        return result;
    }

    /// <summary>Checks that the store answers.</summary>
    public async Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        await _store.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
    }
}
