using Converge.Work.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>Keeps the store's running rows and this scheduler's runs in line: recovery at start, lease renewal and takeover on a shared store, and the reconcile after anything that may have parted them.</summary>
internal sealed class Leases(IWorkStore store, RunningWorks runs, BatchChanges changes, ILogger logger, bool enqueueOnly)
{
    private long _nextMaintenanceAt;
    private bool _needsReconcile;

    /// <summary>Gets or sets whether this scheduler runs work and so holds leases: set once it has started.</summary>
    public bool Active { get; set; }

    /// <summary>Gets when the leases are next renewed, in Unix milliseconds, or <see langword="null"/> when the store has none.</summary>
    public long? NextMaintenanceAt => store.MaintenanceInterval is null ? null : _nextMaintenanceAt;

    /// <summary>Asks for a reconcile at the next batch: memory and store may differ (a failed batch, an op that failed halfway, a takeover).</summary>
    public void ReconcileLater() => _needsReconcile = true;

    /// <summary>At start: RUNNING rows were interrupted by a process death and are enqueued again, due at once; old finished work is pruned.</summary>
    /// <param name="now">The time, in Unix milliseconds.</param>
    /// <param name="keepFinishedFor">How long finished work is kept.</param>
    /// <returns>How many work items were enqueued again, and how many pruned.</returns>
    public async ValueTask<(int Recovered, int Pruned)> RecoverAsync(long now, TimeSpan keepFinishedFor)
    {
        await store.BeginAsync().ConfigureAwait(false);
        try
        {
            var rows = await store.RunningAsync().ConfigureAwait(false);
            foreach (var row in rows)
            {
                row.State = WorkState.Enqueued;
                row.StopReason = StopReason.ProcessDied;
                row.ProgressJson = null;
                // The attempt counts (at-least-once, attempt count kept), but a process death is not the work's
                // failure, so it is due at once rather than after its backoff.
                row.LastEnqueueTime = now;
                row.NextRunAt = now;
                await store.UpdateAsync(row).ConfigureAwait(false);
            }

            store.BatchTime = now;
            var pruned = (await store.PruneAsync(now - (long)keepFinishedFor.TotalMilliseconds).ConfigureAwait(false)).Count;
            await store.CommitAsync().ConfigureAwait(false);
            return (rows.Count, pruned);
        }
        catch
        {
            await store.RollbackAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Shared store: renews this node's leases and takes over the runs of nodes that stopped renewing theirs, in a
    /// transaction of its own, so that no op's failure can roll a renewal back; then makes sure no run here lost its row
    /// (a lease that ran out while this node was stalled). A failed renewal is tried again at the next batch.
    /// </summary>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when the leases are renewed, or the renewal failed.</returns>
    public async ValueTask RenewIfDueAsync(long now)
    {
        if (enqueueOnly || !Active || now < _nextMaintenanceAt || store.MaintenanceInterval is not { } interval)
        {
            return;
        }

        IReadOnlyList<Guid> taken;
        await store.BeginAsync().ConfigureAwait(false);
        try
        {
            store.BatchTime = now;
            taken = await store.MaintainAsync(now).ConfigureAwait(false);
            if (taken.Count > 0)
            {
                store.SignalWrites(reconcile: true); // work is due again: every node may look
            }

            await store.CommitAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.BatchFailed(logger, e);
            await store.RollbackAsync().ConfigureAwait(false);
            return;
        }

        _nextMaintenanceAt = now + (long)interval.TotalMilliseconds;
        changes.Work(taken);
        _needsReconcile = true;
    }

    /// <summary>Reconciles if something asked for it since the last time.</summary>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when memory and store agree.</returns>
    public ValueTask ReconcileIfNeededAsync(long now) => _needsReconcile && !enqueueOnly ? ReconcileAsync(now) : ValueTask.CompletedTask;

    /// <summary>Brings memory and store back in line: RUNNING rows nobody runs are re-enqueued, and runs whose row is no longer RUNNING (cancelled by another process) are stopped.</summary>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when memory and store agree.</returns>
    public async ValueTask ReconcileAsync(long now)
    {
        _needsReconcile = false;
        changes.Due();
        var stored = await store.RunningAsync().ConfigureAwait(false);
        var storedIds = stored.Select(r => r.Id).ToHashSet();
        foreach (var row in stored.Where(r => !runs.Contains(r.Id)))
        {
            row.State = WorkState.Enqueued;
            row.StopReason = StopReason.Unknown;
            row.ProgressJson = null;
            row.NextRunAt = now;
            await store.UpdateAsync(row).ConfigureAwait(false);
            changes.Work(row.Id);
        }

        foreach (var run in runs.Snapshot().Where(r => !storedIds.Contains(r.Id)))
        {
            runs.Stop(run.Id, StopReason.CancelledByApp);
        }
    }
}
