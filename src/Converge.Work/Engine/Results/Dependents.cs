using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>What a work item's end means for the work items that wait for it: unblocked when all their prerequisites succeeded, failed or cancelled with it otherwise.</summary>
internal sealed class Dependents(IWorkStore store, RunningWorks runs, BatchChanges changes)
{
    /// <summary>A work succeeded: each blocked dependent whose prerequisites all succeeded is enqueued.</summary>
    /// <param name="id">The work.</param>
    /// <param name="now">The batch time; the dependents' initial delays count from it.</param>
    /// <returns>A task that completes when the dependents are written.</returns>
    public async ValueTask UnblockAsync(Guid id, long now)
    {
        foreach (var dependentId in await store.DependentsAsync(id).ConfigureAwait(false))
        {
            var dependent = await store.GetAsync(dependentId).ConfigureAwait(false);
            if (dependent is null || dependent.State != WorkState.Blocked)
            {
                continue;
            }

            if ((await store.PrerequisiteStatesAsync(dependentId).ConfigureAwait(false)).All(s => s == WorkState.Succeeded))
            {
                changes.Due();
                changes.Schedule();
                dependent.State = WorkState.Enqueued;
                dependent.LastEnqueueTime = now;
                dependent.ComputeNextRunAt();
                await store.UpdateAsync(dependent).ConfigureAwait(false);
                changes.Work(dependentId);
            }
        }
    }

    /// <summary>A work failed: every unfinished dependent fails, transitively, and those running here are stopped.</summary>
    /// <param name="id">The work.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when the dependents are written.</returns>
    public async ValueTask FailAsync(Guid id, long now)
    {
        foreach (var dependentId in await store.DependentsAsync(id).ConfigureAwait(false))
        {
            var dependent = await store.GetAsync(dependentId).ConfigureAwait(false);
            if (dependent is null || dependent.State.IsFinished())
            {
                continue;
            }

            runs.Stop(dependentId, StopReason.CancelledByApp);
            dependent.State = WorkState.Failed;
            dependent.FailureReason = $"Prerequisite {id} failed.";
            await store.UpdateAsync(dependent).ConfigureAwait(false);
            changes.Work(dependentId);
            await FailAsync(dependentId, now).ConfigureAwait(false);
        }
    }

    /// <summary>Cancels a work item, unless finished, and its dependents, transitively; runs here are stopped.</summary>
    /// <param name="id">The work.</param>
    /// <returns>How many work items were cancelled.</returns>
    public async ValueTask<int> CancelAsync(Guid id)
    {
        var row = await store.GetAsync(id).ConfigureAwait(false);
        if (row is null || row.State.IsFinished())
        {
            return 0;
        }

        if (runs.Stop(id, StopReason.CancelledByApp))
        {
            row.StopReason = StopReason.CancelledByApp;
        }

        row.State = WorkState.Cancelled;
        row.ProgressJson = null;
        await store.UpdateAsync(row).ConfigureAwait(false);
        changes.Work(id);
        var count = 1;
        foreach (var dependentId in await store.DependentsAsync(id).ConfigureAwait(false))
        {
            count += await CancelAsync(dependentId).ConfigureAwait(false);
        }

        return count;
    }
}
