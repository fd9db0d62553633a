namespace Converge.Work;

public sealed partial class WorkManager
{
    private WorkRow Insert(WorkRequestSpec spec, string? uniqueName, IReadOnlyCollection<Guid> prerequisites, WorkState state, long now)
    {
        var row = WorkRow.FromSpec(spec, _options, now);
        if (spec.IsPeriodic && spec.Interval < _options.MinimumPeriodicInterval)
        {
            Log.IntervalClamped(_logger, spec.Id, spec.Interval, _options.MinimumPeriodicInterval);
        }

        row.UniqueName = uniqueName;
        row.State = state;
        row.ComputeNextRunAt();
        _store.Insert(row, prerequisites);
        _metrics.Enqueued.Add(1);
        _changed.Add(row.Id);
        return row;
    }

    private UniqueWorkOutcome EnqueueChain(WorkContinuation continuation, long now)
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
                var (result, leaves, born) = ApplyExistingWorkPolicy(node.UniqueName, node.Policy);
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
                state = prerequisites.Count == 0 ? WorkState.Enqueued : BornState(prerequisites);
            }

            var ids = new List<Guid>(node.Work.Count);
            foreach (var request in node.Work)
            {
                Insert(request.Spec, node.UniqueName, prerequisites, state, now);
                ids.Add(request.Id);
            }

            inserted[node] = ids;
        }

        return outcome;
    }

    /// <summary>The state new work is born in after these prerequisites, as WorkManager decides it.</summary>
    private WorkState BornState(IEnumerable<Guid> prerequisites)
    {
        var states = prerequisites.Select(id => _store.Get(id)?.State
            ?? throw new InvalidOperationException($"Prerequisite {id} does not exist; it may have been pruned.")).ToList();
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

    private (UniqueWorkOutcome Outcome, List<Guid> Prerequisites, WorkState State) ApplyExistingWorkPolicy(string name, ExistingWorkPolicy policy)
    {
        var existing = _store.GetByName(name);
        if (existing.Count == 0)
        {
            return (UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }

        switch (policy)
        {
            case ExistingWorkPolicy.Append:
            case ExistingWorkPolicy.AppendOrReplace:
                var leaves = existing.Where(w => !_store.HasDependents(w.Id)).ToList();
                var failed = leaves.Any(w => w.State == WorkState.Failed);
                var cancelled = leaves.Any(w => w.State == WorkState.Cancelled);
                if (policy == ExistingWorkPolicy.AppendOrReplace && (failed || cancelled))
                {
                    CancelAndDelete(existing);
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
                var replaced = CancelAndDelete(existing);
                return (replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }
    }

    private UniqueWorkOutcome EnqueueUniquePeriodic(string name, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request, long now)
    {
        var existing = _store.GetByName(name);
        switch (policy)
        {
            case ExistingPeriodicWorkPolicy.Keep when existing.Any(w => w.State is WorkState.Enqueued or WorkState.Running):
                return UniqueWorkOutcome.KeptExisting;

            case ExistingPeriodicWorkPolicy.Update when existing.Count > 0:
                if (existing.Count > 1)
                {
                    throw new InvalidOperationException(
                        $"Cannot apply the Update policy to '{name}': it names a chain of {existing.Count} works. Use CancelAndReenqueue.");
                }

                var current = existing[0];
                if (!current.IsPeriodic)
                {
                    throw new InvalidOperationException(
                        $"Cannot apply the Update policy to '{name}': it names one-time work, and an update must keep the work's type. Use CancelAndReenqueue.");
                }

                if (current.State.IsFinished())
                {
                    _store.Delete(current.Id);
                    _changed.Add(current.Id);
                    Insert(request.Spec with { Id = request.Id }, name, [], WorkState.Enqueued, now);
                    return UniqueWorkOutcome.Enqueued;
                }

                // Update in place: same id, schedule, attempt and period counts; the new definition, generation + 1.
                current.ApplyDefinition(request.Spec, _options);
                current.Generation++;
                if (current.State == WorkState.Enqueued)
                {
                    current.ComputeNextRunAt();
                }

                _store.Update(current);
                _store.ReplaceTags(current);
                _changed.Add(current.Id);
                return current.State == WorkState.Running ? UniqueWorkOutcome.UpdatedForNextRun : UniqueWorkOutcome.Updated;

            default:
                var replaced = CancelAndDelete(existing);
                Insert(request.Spec, name, [], WorkState.Enqueued, now);
                return replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued;
        }
    }

    /// <summary>Cancels unfinished work (and dependents) and deletes every work under a name. True when something was cancelled.</summary>
    private bool CancelAndDelete(List<WorkRow> existing)
    {
        var cancelled = 0;
        foreach (var w in existing)
        {
            cancelled += CancelRecursive(w.Id);
        }

        DeleteAll(existing);
        return cancelled > 0;
    }

    private void DeleteAll(List<WorkRow> existing)
    {
        foreach (var w in existing)
        {
            _store.Delete(w.Id);
            _changed.Add(w.Id);
        }
    }
}
