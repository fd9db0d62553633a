using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>A claimed row, its run, and the input it starts with: started once the claim commits.</summary>
internal readonly record struct ClaimedRun(WorkRow Row, RunningWork Run, WorkData Input);

/// <summary>Claims due work for the free slots, at the end of each batch, from a read-ahead of the due query.</summary>
/// <remarks>
/// With few workers and short work, almost every batch frees a slot, and reading the due index on each costs more
/// than the rest of the batch. So one read takes up to <see cref="IWorkStore.DueReadAhead"/> rows, and later batches
/// claim from them. The read-ahead is dropped whenever what is due or its order may have changed
/// (<see cref="BatchChanges.DueChanged"/>), and a claim only marks a row running if it is still enqueued.
/// </remarks>
internal sealed class Claimer(
    IWorkStore store,
    WorkerRegistry workers,
    RunningWorks runs,
    RunResults results,
    BatchChanges changes,
    WorkMetrics metrics,
    int maxConcurrency,
    DeviceState device)
{
    private readonly List<WorkRow> _readAhead = new(64);
    private ConstraintBits _readAheadUnmet;
    private long _lastClaimAt = long.MinValue;

    /// <summary>Gets or sets the device state that decides which constraints are met.</summary>
    public DeviceState Device { get; set; } = device;

    /// <summary>Gets whether the last claim filled every free slot, or had to give up on rows: more due work may be waiting.</summary>
    public bool Saturated { get; private set; }

    /// <summary>Claims due rows for the free slots; the runs are recorded, to be started after the commit.</summary>
    /// <param name="now">The batch time.</param>
    /// <param name="claimed">Where the claimed runs go.</param>
    /// <returns>A task that completes when the claims are written.</returns>
    public async ValueTask ClaimAsync(long now, List<ClaimedRun> claimed)
    {
        var free = maxConcurrency - runs.Count;
        Saturated = false;
        _lastClaimAt = now;
        if (changes.TakeDueChanged())
        {
            _readAhead.Clear();
        }

        if (free <= 0)
        {
            Saturated = true;
            return;
        }

        var due = await TakeDueAsync(now, free).ConfigureAwait(false);
        Saturated = due.Count >= free;
        var claims = new List<(WorkRow Row, WorkData Input, int Attempt)>(due.Count);
        foreach (var row in due)
        {
            if (!workers.CanRun(row.WorkerName))
            {
                // Failing writes the whole row, so first make sure the read-ahead copy is still the stored one.
                if (await IsCurrentAsync(row).ConfigureAwait(false))
                {
                    await results.FailWithoutRunningAsync(row, now, $"No worker is registered under the name '{row.WorkerName}'. Register it with AddWorker or set a callback dispatcher.").ConfigureAwait(false);
                }

                continue;
            }

            WorkData input;
            try
            {
                input = await MergedInputAsync(row).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
            {
                if (await IsCurrentAsync(row).ConfigureAwait(false))
                {
                    await results.FailWithoutRunningAsync(row, now, $"Its input could not be merged: {e.Message}").ConfigureAwait(false);
                }

                continue;
            }

            var attempt = row.RunAttemptCount;
            metrics.QueueLatency.Record(Math.Max(0, now - row.NextRunAt));
            row.State = WorkState.Running;
            row.RunAttemptCount++;
            row.StopReason = StopReason.NotStopped;
            row.ProgressJson = null;
            claims.Add((row, input, attempt));
        }

        if (claims.Count == 0)
        {
            return;
        }

        // One store call for all the claims: a shared store marks them in one statement.
        var marked = await store.MarkRunningAsync(claims.ConvertAll(c => c.Row)).ConfigureAwait(false);
        for (var i = 0; i < claims.Count; i++)
        {
            var (row, input, attempt) = claims[i];
            if (!marked[i])
            {
                // The row changed since it was read: read afresh, at once, so its current version is not left waiting.
                _readAhead.Clear();
                Saturated = true;
                continue;
            }

            changes.Work(row.Id);
            claimed.Add(new ClaimedRun(row, runs.Add(row, attempt), input));
        }
    }

    /// <summary>When the next claim could find work: the earliest due time after the last claim, if a slot is free.</summary>
    /// <returns>The time, in Unix milliseconds, or <see langword="null"/> when there is nothing to wait for.</returns>
    /// <remarks>
    /// It looks past the time the last claim used, not the clock now: work that fell due in between was not claimed and
    /// must get a timer (of zero), or nothing would start it.
    /// </remarks>
    public async ValueTask<long?> NextDueAsync() =>
        runs.Count < maxConcurrency ? await store.NextDueAsync(_lastClaimAt, Device.Unmet()).ConfigureAwait(false) : null;

    /// <summary>Drops the read-ahead: a batch failed, and what it read may no longer be true.</summary>
    public void DropReadAhead() => _readAhead.Clear();

    /// <summary>Due rows to claim, from the read-ahead, refilled once if it runs dry.</summary>
    private async ValueTask<List<WorkRow>> TakeDueAsync(long now, int free)
    {
        var unmet = Device.Unmet();
        if (_readAheadUnmet != unmet)
        {
            _readAhead.Clear();
            _readAheadUnmet = unmet;
        }

        var take = new List<WorkRow>(free);
        var refilled = false;
        while (take.Count < free)
        {
            if (_readAhead.Count == 0)
            {
                if (refilled)
                {
                    break;
                }

                _readAhead.AddRange(await store.DueAsync(new DueQuery
                {
                    Now = now,
                    Unmet = unmet,
                    Limit = Math.Max(free - take.Count, store.DueReadAhead),
                    Running = runs.Ids,
                    Workers = store.IsShared ? workers.RunnableNames : null,
                }).ConfigureAwait(false));
                _readAhead.Reverse(); // taken from the end
                refilled = true;
                continue;
            }

            var row = _readAhead[^1];
            _readAhead.RemoveAt(_readAhead.Count - 1);
            if (!runs.Contains(row.Id) && !take.Exists(t => t.Id == row.Id))
            {
                take.Add(row);
            }
        }

        return take;
    }

    /// <summary>Whether a read-ahead row is still what the store holds; if not, the read-ahead is dropped and re-read at once.</summary>
    private async ValueTask<bool> IsCurrentAsync(WorkRow row)
    {
        var stored = await store.GetAsync(row.Id).ConfigureAwait(false);
        if (stored is not null && stored.State == WorkState.Enqueued && stored.Generation == row.Generation && stored.RunAttemptCount == row.RunAttemptCount)
        {
            return true;
        }

        _readAhead.Clear();
        Saturated = true;
        return false;
    }

    private async ValueTask<WorkData> MergedInputAsync(WorkRow row)
    {
        var own = WorkData.FromJson(row.InputJson);
        if (!row.HasPrerequisites)
        {
            return own;
        }

        var inputs = new List<WorkData> { own };
        inputs.AddRange((await store.PrerequisiteOutputsAsync(row.Id).ConfigureAwait(false)).Select(WorkData.FromJson));
        return InputMerger.FromName(row.InputMerger).Merge(inputs);
    }
}
