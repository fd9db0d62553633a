using Converge.Work.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>Writes new work: single requests, chains, and unique work under its policies, as WorkManager decides them.</summary>
internal sealed class Enqueuer(
    IWorkStore store,
    Dependents dependents,
    BatchChanges changes,
    WorkManagerOptions options,
    WorkMetrics metrics,
    ILogger logger)
{
    /// <summary>Inserts one work.</summary>
    /// <param name="spec">The request.</param>
    /// <param name="uniqueName">Its unique name, if any.</param>
    /// <param name="prerequisites">The work items it waits for.</param>
    /// <param name="state">The state it is born in.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>The row inserted.</returns>
    public async ValueTask<WorkRow> InsertAsync(WorkRequestSpec spec, string? uniqueName, IReadOnlyCollection<Guid> prerequisites, WorkState state, long now)
    {
        var row = WorkRow.FromSpec(spec, options, now);
        if (spec.IsPeriodic && spec.Interval < options.MinimumPeriodicInterval)
        {
            Log.IntervalClamped(logger, spec.Id, spec.Interval, options.MinimumPeriodicInterval);
        }

        row.UniqueName = uniqueName;
        row.State = state;
        row.ComputeNextRunAt();
        await store.InsertAsync(row, prerequisites).ConfigureAwait(false);
        metrics.Enqueued.Add(1);
        changes.Work(row.Id);
        return row;
    }

    /// <summary>Inserts a chain, each step after the one before it; a unique chain first applies its policy.</summary>
    /// <param name="continuation">The chain's last step.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>What the policy did.</returns>
    public async ValueTask<UniqueWorkOutcome> EnqueueChainAsync(WorkContinuation continuation, long now)
    {
        var inserted = new Dictionary<WorkContinuation, List<Guid>>(ReferenceEqualityComparer.Instance);
        var outcome = UniqueWorkOutcome.Enqueued;
        foreach (var node in continuation.Flatten())
        {
            if (node.Parents.Any(p => !inserted.ContainsKey(p)))
            {
                continue; // A parent was dropped by the Keep policy, so its dependents are dropped with it.
            }

            var prerequisites = node.Parents.SelectMany(p => inserted[p]).Distinct().ToList();
            WorkState state;
            if (prerequisites.Count == 0 && node.UniqueName is not null)
            {
                var (result, leaves, born) = await ApplyExistingWorkPolicyAsync(node.UniqueName, node.Policy).ConfigureAwait(false);
                if (result == UniqueWorkOutcome.KeptExisting)
                {
                    outcome = result;
                    continue;
                }

                outcome = result;
                prerequisites = leaves;
                state = born;
            }
            else
            {
                state = prerequisites.Count == 0 ? WorkState.Enqueued : await BornStateAsync(prerequisites).ConfigureAwait(false);
            }

            var ids = new List<Guid>(node.Work.Count);
            foreach (var request in node.Work)
            {
                await InsertAsync(request.Spec, node.UniqueName, prerequisites, state, now).ConfigureAwait(false);
                ids.Add(request.Id);
            }

            inserted[node] = ids;
        }

        return outcome;
    }

    /// <summary>Enqueues unique periodic work under a policy.</summary>
    /// <param name="name">The unique name.</param>
    /// <param name="policy">What to do with existing work under the name.</param>
    /// <param name="request">The request.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>What the policy did.</returns>
    public async ValueTask<UniqueWorkOutcome> EnqueueUniquePeriodicAsync(string name, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request, long now)
    {
        var existing = await store.GetByNameAsync(name).ConfigureAwait(false);
        switch (policy)
        {
            case ExistingPeriodicWorkPolicy.Keep when existing.Any(w => w.State is WorkState.Enqueued or WorkState.Running):
                return UniqueWorkOutcome.KeptExisting;

            case ExistingPeriodicWorkPolicy.Update when existing.Count > 0:
                if (existing.Count > 1)
                {
                    throw new InvalidOperationException(
                        $"Cannot apply the Update policy to '{name}': it names a chain of {existing.Count} work items. Use CancelAndReenqueue.");
                }

                var current = existing[0];
                if (!current.IsPeriodic)
                {
                    throw new InvalidOperationException(
                        $"Cannot apply the Update policy to '{name}': it names one-time work, and an update must keep the work's type. Use CancelAndReenqueue.");
                }

                if (current.State.IsFinished())
                {
                    await store.DeleteAsync(current.Id).ConfigureAwait(false);
                    changes.Work(current.Id);
                    await InsertAsync(request.Spec with { Id = request.Id }, name, [], WorkState.Enqueued, now).ConfigureAwait(false);
                    return UniqueWorkOutcome.Enqueued;
                }

                // Update in place: same id, schedule, attempt and period counts; the new definition, generation + 1.
                current.ApplyDefinition(request.Spec, options);
                current.Generation++;
                if (current.State == WorkState.Enqueued)
                {
                    current.ComputeNextRunAt();
                }

                await store.UpdateAsync(current).ConfigureAwait(false);
                await store.ReplaceTagsAsync(current).ConfigureAwait(false);
                changes.Work(current.Id);
                return current.State == WorkState.Running ? UniqueWorkOutcome.UpdatedForNextRun : UniqueWorkOutcome.Updated;

            default:
                var replaced = await CancelAndDeleteAsync(existing).ConfigureAwait(false);
                await InsertAsync(request.Spec, name, [], WorkState.Enqueued, now).ConfigureAwait(false);
                return replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued;
        }
    }

    /// <summary>The state new work is born in after these prerequisites, as WorkManager decides it.</summary>
    private async ValueTask<WorkState> BornStateAsync(IEnumerable<Guid> prerequisites)
    {
        var states = new List<WorkState>();
        foreach (var id in prerequisites)
        {
            states.Add((await store.GetAsync(id).ConfigureAwait(false))?.State
                ?? throw new InvalidOperationException($"Prerequisite {id} does not exist; it may have been pruned."));
        }

        if (states.Contains(WorkState.Failed))
        {
            return WorkState.Failed;
        }

        if (states.Contains(WorkState.Cancelled))
        {
            return WorkState.Cancelled;
        }

        return states.All(s => s == WorkState.Succeeded) ? WorkState.Enqueued : WorkState.Blocked;
    }

    private async ValueTask<(UniqueWorkOutcome Outcome, List<Guid> Prerequisites, WorkState State)> ApplyExistingWorkPolicyAsync(string name, ExistingWorkPolicy policy)
    {
        var existing = await store.GetByNameAsync(name).ConfigureAwait(false);
        if (existing.Count == 0)
        {
            return (UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }

        switch (policy)
        {
            case ExistingWorkPolicy.Append:
            case ExistingWorkPolicy.AppendOrReplace:
                var leaves = new List<WorkRow>();
                foreach (var w in existing)
                {
                    if (!await store.HasDependentsAsync(w.Id).ConfigureAwait(false))
                    {
                        leaves.Add(w);
                    }
                }

                var failed = leaves.Any(w => w.State == WorkState.Failed);
                var cancelled = leaves.Any(w => w.State == WorkState.Cancelled);
                if (policy == ExistingWorkPolicy.AppendOrReplace && (failed || cancelled))
                {
                    await CancelAndDeleteAsync(existing).ConfigureAwait(false);
                    return (UniqueWorkOutcome.Replaced, [], WorkState.Enqueued);
                }

                var state = failed ? WorkState.Failed
                    : cancelled ? WorkState.Cancelled
                    : leaves.All(w => w.State == WorkState.Succeeded) ? WorkState.Enqueued
                    : WorkState.Blocked;
                return (UniqueWorkOutcome.Appended, leaves.ConvertAll(w => w.Id), state);

            case ExistingWorkPolicy.Keep when existing.Any(w => w.State is WorkState.Enqueued or WorkState.Running):
                return (UniqueWorkOutcome.KeptExisting, [], WorkState.Enqueued);

            default:
                var replaced = await CancelAndDeleteAsync(existing).ConfigureAwait(false);
                return (replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }
    }

    /// <summary>Cancels unfinished work (and dependents) and deletes every work under a name. True when something was cancelled.</summary>
    private async ValueTask<bool> CancelAndDeleteAsync(IReadOnlyList<WorkRow> existing)
    {
        var cancelled = 0;
        foreach (var w in existing)
        {
            cancelled += await dependents.CancelAsync(w.Id).ConfigureAwait(false);
        }

        foreach (var w in existing)
        {
            await store.DeleteAsync(w.Id).ConfigureAwait(false);
            changes.Work(w.Id);
        }

        return cancelled > 0;
    }
}
