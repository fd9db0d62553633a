using Converge.Work.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>How a run ends in the store: its result, a stop, or a failure before it could start.</summary>
/// <remarks>
/// One-time work that succeeded or failed takes a narrow path (one update of its own row, no read); periodic work,
/// retries and work items with dependents read their row and write it whole.
/// </remarks>
internal sealed class RunResults(
    IWorkStore store,
    RunningWorks runs,
    Dependents dependents,
    BatchChanges changes,
    WorkMetrics metrics,
    ILogger logger,
    bool debugMode)
{
    /// <summary>Stores a run's result, if the run is still current; otherwise the result no longer counts.</summary>
    /// <param name="run">The run.</param>
    /// <param name="result">What the worker returned.</param>
    /// <param name="error">What it threw, if it did; the result is then a failure.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when the result is written.</returns>
    public async ValueTask ApplyAsync(RunningWork run, WorkResult result, Exception? error, long now)
    {
        if (!runs.IsCurrent(run))
        {
            return; // Stopped or cancelled while it ran; its result no longer counts.
        }

        runs.Remove(run.Id);
        run.Dispose();
        if (!run.IsPeriodic && result is not WorkResult.RetryResult)
        {
            await FinishOneTimeAsync(run, result, error, now).ConfigureAwait(false);
            return;
        }

        var row = await store.GetAsync(run.Id).ConfigureAwait(false);
        if (row is null || row.State != WorkState.Running || row.RunningElsewhere)
        {
            return;
        }

        row.ProgressJson = null;
        row.StopReason = StopReason.NotStopped;
        row.OverrideConstraints = false;
        switch (result)
        {
            case WorkResult.SuccessResult:
                metrics.Succeeded.Add(1);
                row.OutputJson = result.Output.ToJson();
                row.FailureReason = null;
                if (row.IsPeriodic)
                {
                    ResetPeriodic(row, now);
                    await store.UpdateAsync(row).ConfigureAwait(false);
                }
                else
                {
                    row.State = WorkState.Succeeded;
                    await store.UpdateAsync(row).ConfigureAwait(false);
                    if (row.HasDependents)
                    {
                        await dependents.UnblockAsync(row.Id, now).ConfigureAwait(false);
                    }
                }

                break;

            case WorkResult.RetryResult:
                changes.Schedule();
                metrics.Retried.Add(1);
                row.State = WorkState.Enqueued;
                row.LastEnqueueTime = now;
                row.ComputeNextRunAt();
                await store.UpdateAsync(row).ConfigureAwait(false);
                break;

            default:
                metrics.Failed.Add(1);
                row.OutputJson = result.Output.ToJson();
                if (error is not null)
                {
                    Log.WorkThrew(logger, error, row.Id, row.WorkerName);
                    row.FailureReason = $"{error.GetType().Name}: {error.Message}";
                }

                if (row.IsPeriodic)
                {
                    ResetPeriodic(row, now);
                    await store.UpdateAsync(row).ConfigureAwait(false);
                }
                else
                {
                    row.State = WorkState.Failed;
                    await store.UpdateAsync(row).ConfigureAwait(false);
                    if (row.HasDependents)
                    {
                        await dependents.FailAsync(row.Id, now).ConfigureAwait(false);
                    }
                }

                break;
        }

        changes.Work(row.Id);
        LogFinished(row.Id, row.WorkerName, result, row.State);
    }

    /// <summary>
    /// Finishes, in one store call, the one-time results among the consecutive results from <paramref name="start"/> on
    /// whose work items nothing depends on; marks their ops <see cref="CompleteOp.Finished"/>. The others, and all of them if
    /// the statement fails (but not the store), are applied op by op as usual.
    /// </summary>
    /// <param name="batch">The batch's ops.</param>
    /// <param name="start">The first result to look at.</param>
    /// <returns>A task that completes when the results are written.</returns>
    /// <remarks>
    /// Such a result is one narrow update of its own row and nothing else, so finishing several together is the same
    /// as finishing them one after the other; a result whose work has dependents, or that no longer runs here, is not
    /// finished by the call and takes the usual path.
    /// </remarks>
    public async ValueTask FinishTogetherAsync(List<Op> batch, int start)
    {
        List<(CompleteOp Op, OneTimeFinish Finish)>? block = null;
        for (var j = start; j < batch.Count; j++)
        {
            if (batch[j] is TickOp)
            {
                continue;
            }

            if (batch[j] is not CompleteOp c)
            {
                break;
            }

            c.TriedTogether = true; // whatever comes of it, this result is not offered to a block again
            if (IsPlainOneTime(c) && (block is null || !block.Exists(b => b.Op.Work.Id == c.Work.Id)))
            {
                block ??= [];
                block.Add((c, null!));
            }
        }

        if (block is not { Count: > 1 })
        {
            return;
        }

        for (var k = 0; k < block.Count; k++)
        {
            var (op, _) = block[k];
            block[k] = (op, FinishOf(op.Work.Id, op.Result, op.Error));
        }

        IReadOnlySet<Guid> finished;
        await store.SavepointAsync("finish").ConfigureAwait(false);
        try
        {
            finished = await store.FinishOneTimeWithoutDependentsAsync(block.ConvertAll(b => b.Finish)).ConfigureAwait(false);
            await store.ReleaseAsync("finish").ConfigureAwait(false);
        }
        catch (Exception e) when (!store.IsStoreFailure(e))
        {
            await store.RollbackToAsync("finish").ConfigureAwait(false);
            return;
        }
        catch
        {
            // The store failed and the batch with it. As with results applied one by one, the runs no longer count as
            // running here, so the reconcile after the failed batch enqueues their work items again (at least once).
            foreach (var (op, _) in block)
            {
                runs.Remove(op.Work.Id);
                op.Work.Dispose();
            }

            throw;
        }

        foreach (var (op, finish) in block)
        {
            if (!finished.Contains(op.Work.Id))
            {
                continue;
            }

            op.Finished = true;
            runs.Remove(op.Work.Id);
            op.Work.Dispose();
            if (op.Error is not null)
            {
                Log.WorkThrew(logger, op.Error, op.Work.Id, op.Work.WorkerName);
            }

            (finish.State == WorkState.Succeeded ? metrics.Succeeded : metrics.Failed).Add(1);
            changes.Work(op.Work.Id);
            LogFinished(op.Work.Id, op.Work.WorkerName, op.Result, finish.State);
        }
    }

    /// <summary>Stops a run, if it is still current, and enqueues its work again with the reason, as WorkManager does.</summary>
    /// <param name="run">The run.</param>
    /// <param name="reason">Why it stops.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when the work is written.</returns>
    public async ValueTask StopAsync(RunningWork run, StopReason reason, long now)
    {
        if (!runs.IsCurrent(run))
        {
            return;
        }

        runs.Stop(run.Id, reason);
        var row = await store.GetAsync(run.Id).ConfigureAwait(false);
        if (row is null || row.State != WorkState.Running || row.RunningElsewhere)
        {
            return;
        }

        changes.Schedule();
        // As WorkManager: back to ENQUEUED, the attempt counted, the last enqueue time kept, so the backoff runs
        // from when the work was enqueued and a work item whose constraint returns soon is not held back long.
        row.State = WorkState.Enqueued;
        row.StopReason = reason;
        row.ProgressJson = null;
        row.ComputeNextRunAt();
        await store.UpdateAsync(row).ConfigureAwait(false);
        changes.Work(row.Id);
        Log.WorkStopped(logger, row.Id, row.WorkerName, reason);
    }

    /// <summary>A claimed row cannot run (no worker, input that cannot be merged): one-time work fails, periodic work goes to its next period.</summary>
    /// <param name="row">The row, as read.</param>
    /// <param name="now">The batch time.</param>
    /// <param name="reason">Why, for <see cref="WorkInfo.FailureReason"/>.</param>
    /// <returns>A task that completes when the work is written.</returns>
    public async ValueTask FailWithoutRunningAsync(WorkRow row, long now, string reason)
    {
        Log.WorkFailedToStart(logger, row.Id, reason);
        metrics.Failed.Add(1);
        if (row.IsPeriodic)
        {
            row.FailureReason = reason;
            ResetPeriodic(row, now);
            await store.UpdateAsync(row).ConfigureAwait(false);
            changes.Work(row.Id);
            return;
        }

        row.State = WorkState.Failed;
        row.FailureReason = reason;
        await store.UpdateAsync(row).ConfigureAwait(false);
        changes.Work(row.Id);
        await dependents.FailAsync(row.Id, now).ConfigureAwait(false);
    }

    /// <summary>The common case, one-time work that succeeded or failed: one narrow update, no read of the row.</summary>
    private async ValueTask FinishOneTimeAsync(RunningWork run, WorkResult result, Exception? error, long now)
    {
        if (error is not null)
        {
            Log.WorkThrew(logger, error, run.Id, run.WorkerName);
        }

        var finish = FinishOf(run.Id, result, error);
        var hasDependents = await store.FinishOneTimeAsync(finish).ConfigureAwait(false);
        if (hasDependents is null)
        {
            return; // no longer running: cancelled, replaced or deleted meanwhile
        }

        (finish.State == WorkState.Succeeded ? metrics.Succeeded : metrics.Failed).Add(1);
        changes.Work(run.Id);
        if (hasDependents.Value)
        {
            if (finish.State == WorkState.Succeeded)
            {
                await dependents.UnblockAsync(run.Id, now).ConfigureAwait(false);
            }
            else
            {
                await dependents.FailAsync(run.Id, now).ConfigureAwait(false);
            }
        }

        LogFinished(run.Id, run.WorkerName, result, finish.State);
    }

    /// <summary>Periodic work after a run, success or failure: next period, attempts reset, next run at end of this run + interval.</summary>
    private void ResetPeriodic(WorkRow row, long now)
    {
        changes.Schedule();
        row.State = WorkState.Enqueued;
        row.PeriodCount++;
        row.RunAttemptCount = 0;
        row.LastEnqueueTime = now;
        row.ProgressJson = null;
        row.OverrideConstraints = false;
        row.ComputeNextRunAt();
    }

    /// <summary>Whether the result finishes a one-time work that still runs here: one narrow update of its row.</summary>
    private bool IsPlainOneTime(CompleteOp op) =>
        !op.Finished && !op.Work.IsPeriodic && op.Result is not WorkResult.RetryResult && runs.IsCurrent(op.Work);

    private static OneTimeFinish FinishOf(Guid id, WorkResult result, Exception? error) => new()
    {
        Id = id,
        State = result is WorkResult.SuccessResult ? WorkState.Succeeded : WorkState.Failed,
        OutputJson = result.Output.ToJson(),
        FailureReason = error is null ? null : $"{error.GetType().Name}: {error.Message}",
    };

    private void LogFinished(Guid id, string workerName, WorkResult result, WorkState state)
    {
        if (debugMode)
        {
            Log.WorkFinishedInfo(logger, id, workerName, result.ToString()!, state);
        }
        else
        {
            Log.WorkFinishedDebug(logger, id, workerName, result.ToString()!, state);
        }
    }
}
