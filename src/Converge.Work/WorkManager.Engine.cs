using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.Work;

public sealed partial class WorkManager
{
    private const int MaxBatch = 2048;
    private readonly Lock _batchLock = new();
    private readonly List<Op> _batch = new(64);
    private long _lastClaimAt = long.MinValue;
    private readonly List<WorkRow> _dueCache = new(64);
    private ConstraintBits _dueCacheUnmet;
    private long _nextMaintenanceAt;

    /// <summary>Whether this batch made work due or re-enqueued it (a retry, a period, a stop, an unblocked dependent): other nodes may look.</summary>
    private bool _scheduleChanged;

    private async Task LoopAsync()
    {
        try
        {
            do
            {
                lock (_batchLock)
                {
                    if (_crash is not null)
                    {
                        break;
                    }

                    DrainAndProcess();
                }
            }
            while (_store.WaitsOnNetwork ? WaitForOpsOnThisThread() : await _ops.Reader.WaitToReadAsync().ConfigureAwait(false));
        }
        catch (Exception e)
        {
            Crash(e);
            throw;
        }
        finally
        {
            lock (_batchLock)
            {
                while (_ops.Reader.TryRead(out var op))
                {
                    op.Fail(_crash is { } crash
                        ? new InvalidOperationException("The work scheduler loop crashed; see the inner exception.", crash)
                        : new ObjectDisposedException(nameof(WorkManager), "The work manager has stopped."));
                }

                foreach (var waiter in _idleWaiters)
                {
                    waiter.TrySetResult();
                }

                _idleWaiters.Clear();
            }
        }
    }

    /// <summary>
    /// Waits for the next ops on the loop's own thread (started long-running), instead of returning it and continuing
    /// on the thread pool: a store whose batches wait on the network would otherwise hold a pool thread through every
    /// round trip, and on a small machine starve the workers, which run on the pool, until the pool grows (about two
    /// threads a second).
    /// </summary>
    /// <returns>Whether more ops can come.</returns>
    private bool WaitForOpsOnThisThread()
    {
        var wait = _ops.Reader.WaitToReadAsync();
        return wait.IsCompleted ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
    }

    private void Crash(Exception e)
    {
        Log.LoopCrashed(_logger, e);
        _crash = e;
        _ops.Writer.TryComplete(e);
    }

    /// <summary>The loop's turn: applies every queued op, a batch per transaction, until the queue is empty. The caller holds <see cref="_batchLock"/>.</summary>
    /// <remarks>
    /// A caller of <see cref="Submit{T}"/> that finds no batch in progress and the store free commits one batch itself
    /// (<see cref="ProcessOneBatch"/> inline), saving two thread hops; concurrent callers are combined into one transaction.
    /// </remarks>
    private void DrainAndProcess()
    {
        do
        {
            ProcessOneBatch(inline: false);
        }
        while (_ops.Reader.Count > 0);
    }

    private void ProcessOneBatch(bool inline)
    {
        // Inline, the caller's thread must never wait on the store: it takes the write lock only if it is free now,
        // and otherwise leaves its op to the loop, which may wait.
        if (inline && !_store.TryBeginNow())
        {
            return;
        }

        _batch.Clear();
        while (_batch.Count < MaxBatch && _ops.Reader.TryRead(out var op))
        {
            if (op is IdleOp idle)
            {
                _idleWaiters.Add(idle.Completion);
                continue;
            }

            _batch.Add(op);
        }

        if (_batch.Count > 0 || !inline)
        {
            ProcessBatch(_batch, begun: inline);
        }
        else
        {
            _store.Rollback();
        }

        if (_ops.Reader.Count == 0)
        {
            ResolveIdleWaiters();
        }
    }

    private void ResolveIdleWaiters()
    {
        if (_idleWaiters.Count == 0 || _running.Count > 0 || (_claimSaturated && !_stopping))
        {
            return;
        }

        foreach (var waiter in _idleWaiters)
        {
            waiter.TrySetResult();
        }

        _idleWaiters.Clear();
    }

    private void ProcessBatch(List<Op> batch, bool begun = false)
    {
        var now = Now();
        var toStart = new List<(WorkRow Row, RunningWork Run, WorkData Input)>();
        try
        {
            if (!begun)
            {
                RenewLeases(now);
                _store.Begin();
            }

            _store.BatchTime = now;
            _scheduleChanged = false;

            if (_needsReconcile && !_options.EnqueueOnly)
            {
                Reconcile(now);
            }

            // A batch of one op needs no savepoint: if it fails, the whole transaction rolls back below.
            var writes = 0;
            var userWrites = false;
            foreach (var op in batch)
            {
                writes += op is TickOp ? 0 : 1;
                userWrites |= op.ChangesSchedule;
            }

            var single = writes == 1;
            for (var i = 0; i < batch.Count; i++)
            {
                var op = batch[i];
                if (op is TickOp)
                {
                    continue;
                }

                if (op is not (CompleteOp or ProgressOp))
                {
                    _dueCache.Clear();
                }

                if (op is CompleteOp complete)
                {
                    if (!single && !complete.Finished && !complete.TriedTogether)
                    {
                        FinishTogether(batch, i);
                    }

                    if (complete.Finished)
                    {
                        continue;
                    }
                }

                if (single)
                {
                    try
                    {
                        op.Apply(this, now);
                    }
                    catch (Exception e) when (!_store.IsStoreFailure(e))
                    {
                        _store.Rollback();
                        op.SetError(e);
                        _needsReconcile = true;
                        _changed.Clear();
                        _store.Begin();
                    }

                    continue;
                }

                _store.Savepoint("op");
                try
                {
                    op.Apply(this, now);
                    _store.Release("op");
                }
                catch (Exception e)
                {
                    _store.RollbackTo("op");
                    op.SetError(e);
                    // The op may have changed in-memory run state before its SQL failed; recheck at the next batch.
                    _needsReconcile = true;
                }
            }

            if (!_options.EnqueueOnly && !_stopping && _started)
            {
                Claim(now, toStart);
            }

            if (userWrites || _scheduleChanged || _changed.Count > 0)
            {
                _store.SignalWrites(reconcile: userWrites || _scheduleChanged);
            }

            _store.Commit();
        }
        catch (Exception e)
        {
            Log.BatchFailed(_logger, e);
            try
            {
                _store.Rollback();
            }
            catch (Exception rollback)
            {
                Log.BatchFailed(_logger, rollback); // SQLite may already have rolled back (I/O error, disk full).
            }

            foreach (var op in batch)
            {
                op.Fail(e);
                if (op is CompleteOp c && _running.TryGetValue(c.Work.Id, out var current) && current.RunId == c.Work.RunId)
                {
                    // Its result was not stored, and its run is over: the reconcile at the next batch enqueues it again.
                    _running.Remove(c.Work.Id);
                    c.Work.Dispose();
                }
            }

            foreach (var (row, run, _) in toStart)
            {
                _running.Remove(row.Id);
                run.Dispose();
            }

            _changed.Clear();
            _dueCache.Clear();
            _needsReconcile = true;
            // Try again later rather than spin on a store that is failing.
            _timer.Change(TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
            return;
        }

        foreach (var op in batch)
        {
            op.Complete();
        }

        foreach (var (row, run, input) in toStart)
        {
            Start(row, run, input);
        }

        NotifyWatchers();
        if (_claimSaturated && _running.Count < _options.MaxConcurrency && !_stopping)
        {
            // Claimed rows failed without running (unknown worker, bad input): more due work may be waiting.
            Post(TickOp.Instance);
        }
        else
        {
            ArmTimer();
        }
    }

    /// <summary>
    /// Shared store: renews this node's leases and takes over the runs of nodes that stopped renewing theirs, in a
    /// transaction of its own, so that no op's failure can roll a renewal back; then makes sure no run here lost its row
    /// (a lease that ran out while this node was stalled). A failed renewal is tried again at the next batch.
    /// </summary>
    private void RenewLeases(long now)
    {
        if (_options.EnqueueOnly || !_started || now < _nextMaintenanceAt || _store.MaintenanceInterval is not { } interval)
        {
            return;
        }

        IReadOnlyList<Guid> taken;
        _store.Begin();
        try
        {
            _store.BatchTime = now;
            taken = _store.Maintain(now);
            if (taken.Count > 0)
            {
                _store.SignalWrites(reconcile: true); // work is due again: every node may look
            }

            _store.Commit();
        }
        catch (Exception e)
        {
            Log.BatchFailed(_logger, e);
            _store.Rollback();
            return;
        }

        _nextMaintenanceAt = now + (long)interval.TotalMilliseconds;
        _changed.UnionWith(taken);
        _needsReconcile = true;
    }

    /// <summary>The largest delay a timer accepts is about 49.7 days; longer waits re-arm on the way.</summary>
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromDays(1);

    private void ArmTimer()
    {
        if (_options.EnqueueOnly || _stopping)
        {
            return;
        }

        // Look past the time the last claim used, not the clock now: work that fell due in between was not claimed
        // and must get a timer (of zero), or nothing would start it.
        long? next = _running.Count < _options.MaxConcurrency ? _store.NextDue(_lastClaimAt, _device.Unmet()) : null;
        if (_store.MaintenanceInterval is not null && (next is null || next > _nextMaintenanceAt))
        {
            next = _nextMaintenanceAt;
        }

        var delay = next is { } n ? TimeSpan.FromMilliseconds(Math.Max(0, n - Now())) : Timeout.InfiniteTimeSpan;
        if (delay > MaxTimerDelay)
        {
            delay = MaxTimerDelay;
        }

        _timer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Brings memory and store back in line: RUNNING rows nobody runs are re-enqueued, and runs whose row is no longer RUNNING (cancelled by another process) are stopped.</summary>
    private void Reconcile(long now)
    {
        _needsReconcile = false;
        _dueCache.Clear();
        var stored = _store.Running();
        var storedIds = stored.Select(r => r.Id).ToHashSet();
        foreach (var row in stored.Where(r => !_running.ContainsKey(r.Id)))
        {
            row.State = WorkState.Enqueued;
            row.StopReason = StopReason.Unknown;
            row.ProgressJson = null;
            row.NextRunAt = now;
            _store.Update(row);
            _changed.Add(row.Id);
        }

        foreach (var run in _running.Values.Where(r => !storedIds.Contains(r.Id)).ToList())
        {
            _running.Remove(run.Id);
            run.Stop(StopReason.CancelledByApp);
            _metrics.Stopped.Add(1);
        }
    }

    private void NotifyWatchers()
    {
        if (_changed.Count == 0)
        {
            return;
        }

        foreach (var subscription in _subscriptions.Keys)
        {
            if (subscription.Id is not { } id || _changed.Contains(id))
            {
                subscription.Notify();
            }
        }

        _changed.Clear();
    }

    private void Claim(long now, List<(WorkRow Row, RunningWork Run, WorkData Input)> toStart)
    {
        var free = _options.MaxConcurrency - _running.Count;
        _claimSaturated = false;
        _lastClaimAt = now;
        if (free <= 0)
        {
            _claimSaturated = true;
            return;
        }

        var due = TakeDue(now, free);
        _claimSaturated = due.Count >= free;
        var claims = new List<(WorkRow Row, WorkData Input, int Attempt)>(due.Count);
        foreach (var row in due)
        {
            if (!_workers.CanRun(row.WorkerName))
            {
                // Failing writes the whole row, so first make sure the read-ahead copy is still the stored one.
                if (IsCurrent(row))
                {
                    FailWithoutRunning(row, now, $"No worker is registered under the name '{row.WorkerName}'. Register it with AddWorker or set a callback dispatcher.");
                }

                continue;
            }

            WorkData input;
            try
            {
                input = MergedInput(row);
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
            {
                if (IsCurrent(row))
                {
                    FailWithoutRunning(row, now, $"Its input could not be merged: {e.Message}");
                }

                continue;
            }

            var attempt = row.RunAttemptCount;
            _metrics.QueueLatency.Record(Math.Max(0, now - row.NextRunAt));
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
        var claimed = _store.MarkRunning(claims.ConvertAll(c => c.Row));
        for (var i = 0; i < claims.Count; i++)
        {
            var (row, input, attempt) = claims[i];
            if (!claimed[i])
            {
                // The row changed since it was read: read afresh, at once, so its current version is not left waiting.
                _dueCache.Clear();
                _claimSaturated = true;
                continue;
            }

            _changed.Add(row.Id);
            var run = new RunningWork(row.Id, ++_runSeq, row.WorkerName, attempt, row.Generation, row.Constraints, row.OverrideConstraints, row.IsPeriodic);
            _running[row.Id] = run;
            toStart.Add((row, run, input));
        }
    }

    /// <summary>Due rows to claim, from a read-ahead of the due query.</summary>
    /// <remarks>
    /// With few workers and short work, almost every batch frees a slot, and reading the due index on each costs more
    /// than the rest of the batch. So one read takes up to <see cref="IWorkStore.DueReadAhead"/> rows, and later batches
    /// claim from them. The read-ahead is dropped whenever an op could have changed what is due or its order (anything but a
    /// result or progress), and a claim only marks a row running if it is still enqueued.
    /// </remarks>
    private List<WorkRow> TakeDue(long now, int free)
    {
        var unmet = _device.Unmet();
        if (_dueCacheUnmet != unmet)
        {
            _dueCache.Clear();
            _dueCacheUnmet = unmet;
        }

        var take = new List<WorkRow>(free);
        var refilled = false;
        while (take.Count < free)
        {
            if (_dueCache.Count == 0)
            {
                if (refilled)
                {
                    break;
                }

                _dueCache.AddRange(_store.Due(now, unmet, Math.Max(free - take.Count, _store.DueReadAhead), _running, _store.IsShared ? _workers.RunnableNames : null));
                _dueCache.Reverse(); // taken from the end
                refilled = true;
                continue;
            }

            var row = _dueCache[^1];
            _dueCache.RemoveAt(_dueCache.Count - 1);
            if (!_running.ContainsKey(row.Id) && !take.Exists(t => t.Id == row.Id))
            {
                take.Add(row);
            }
        }

        return take;
    }

    /// <summary>Whether a read-ahead row is still what the store holds; if not, the read-ahead is dropped and re-read at once.</summary>
    private bool IsCurrent(WorkRow row)
    {
        var stored = _store.Get(row.Id);
        if (stored is not null && stored.State == WorkState.Enqueued && stored.Generation == row.Generation && stored.RunAttemptCount == row.RunAttemptCount)
        {
            return true;
        }

        _dueCache.Clear();
        _claimSaturated = true;
        return false;
    }

    private WorkData MergedInput(WorkRow row)
    {
        var own = WorkData.FromJson(row.InputJson);
        if (!row.HasPrerequisites)
        {
            return own;
        }

        var inputs = new List<WorkData> { own };
        inputs.AddRange(_store.PrerequisiteOutputs(row.Id).Select(WorkData.FromJson));
        return InputMerger.FromName(row.InputMerger).Merge(inputs);
    }

    private void FailWithoutRunning(WorkRow row, long now, string reason)
    {
        Log.WorkFailedToStart(_logger, row.Id, reason);
        _metrics.Failed.Add(1);
        if (row.IsPeriodic)
        {
            row.FailureReason = reason;
            ResetPeriodic(row, now);
            _store.Update(row);
            _changed.Add(row.Id);
            return;
        }

        row.State = WorkState.Failed;
        row.FailureReason = reason;
        _store.Update(row);
        _changed.Add(row.Id);
        FailDependents(row.Id, now);
    }

    private void Start(WorkRow row, RunningWork run, WorkData input)
    {
        _metrics.Started.Add(1);
        if (_options.DebugMode)
        {
            Log.WorkStartedInfo(_logger, row.Id, row.WorkerName, run.Attempt);
        }
        else
        {
            Log.WorkStartedDebug(_logger, row.Id, row.WorkerName, run.Attempt);
        }

        run.Timeout = _options.ExecutionTimeout == Timeout.InfiniteTimeSpan ? null : _time.CreateTimer(
            static s =>
            {
                var (manager, r) = ((WorkManager, RunningWork))s!;
                manager.Post(new StopOp(r, StopReason.Timeout));
            },
            (this, run),
            _options.ExecutionTimeout,
            Timeout.InfiniteTimeSpan);

        var context = new WorkContext(
            row.Id,
            row.WorkerName,
            input,
            row.Tags,
            run.Attempt,
            row.Generation,
            run.Token,
            (progress, ct) => new ValueTask(Submit(new ProgressOp(run, progress.ToJson()), ct)),
            () => run.Reason);

        var task = Task.Run(() => ExecuteAsync(run, context));
        _workerTasks.TryAdd(task, 0);
        _ = task.ContinueWith(static (t, s) => ((WorkManager)s!)._workerTasks.TryRemove(t, out _), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task ExecuteAsync(RunningWork run, WorkContext context)
    {
        WorkResult result;
        Exception? error = null;
        try
        {
            var scope = _services.GetService<IServiceScopeFactory>()?.CreateAsyncScope();
            try
            {
                var worker = _workers.Create(run.WorkerName, scope?.ServiceProvider ?? _services);
                result = await worker.DoWorkAsync(context).ConfigureAwait(false) ?? WorkResult.Failure();
            }
            finally
            {
                if (scope is { } s)
                {
                    await s.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (run.Token.IsCancellationRequested)
        {
            return; // Stopped: the stop already re-enqueued or cancelled the work.
        }
        catch (Exception e)
        {
            error = e;
            result = WorkResult.Failure();
        }

        // Results go through the loop rather than inline: with several workers finishing at once, the loop commits
        // their results (and the next claims) in one transaction.
        Post(new CompleteOp(run, result, error));
    }

    private void ApplyResult(RunningWork run, WorkResult result, Exception? error, long now)
    {
        if (!_running.TryGetValue(run.Id, out var current) || current.RunId != run.RunId)
        {
            return; // Stopped or cancelled while it ran; its result no longer counts.
        }

        _running.Remove(run.Id);
        run.Dispose();
        if (!run.IsPeriodic && result is not WorkResult.RetryResult)
        {
            FinishOneTime(run, result, error, now);
            return;
        }

        var row = _store.Get(run.Id);
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
                _metrics.Succeeded.Add(1);
                row.OutputJson = result.Output.ToJson();
                row.FailureReason = null;
                if (row.IsPeriodic)
                {
                    ResetPeriodic(row, now);
                    _store.Update(row);
                }
                else
                {
                    row.State = WorkState.Succeeded;
                    _store.Update(row);
                    if (row.HasDependents)
                    {
                        UnblockDependents(row.Id, now);
                    }
                }

                break;

            case WorkResult.RetryResult:
                _scheduleChanged = true;
                _metrics.Retried.Add(1);
                row.State = WorkState.Enqueued;
                row.LastEnqueueTime = now;
                row.ComputeNextRunAt();
                _store.Update(row);
                break;

            default:
                _metrics.Failed.Add(1);
                row.OutputJson = result.Output.ToJson();
                if (error is not null)
                {
                    Log.WorkThrew(_logger, error, row.Id, row.WorkerName);
                    row.FailureReason = $"{error.GetType().Name}: {error.Message}";
                }

                if (row.IsPeriodic)
                {
                    ResetPeriodic(row, now);
                    _store.Update(row);
                }
                else
                {
                    row.State = WorkState.Failed;
                    _store.Update(row);
                    if (row.HasDependents)
                    {
                        FailDependents(row.Id, now);
                    }
                }

                break;
        }

        _changed.Add(row.Id);
        if (_options.DebugMode)
        {
            Log.WorkFinishedInfo(_logger, row.Id, row.WorkerName, result.ToString()!, row.State);
        }
        else
        {
            Log.WorkFinishedDebug(_logger, row.Id, row.WorkerName, result.ToString()!, row.State);
        }
    }

    /// <summary>The common case, one-time work that succeeded or failed: one narrow update, no read of the row.</summary>
    private void FinishOneTime(RunningWork run, WorkResult result, Exception? error, long now)
    {
        var finish = OneTimeFinishOf(run, result, error);
        var hasDependents = _store.FinishOneTime(run.Id, finish.State, finish.OutputJson, finish.FailureReason);
        if (hasDependents is null)
        {
            return; // no longer running: cancelled, replaced or deleted meanwhile
        }

        (finish.State == WorkState.Succeeded ? _metrics.Succeeded : _metrics.Failed).Add(1);
        _changed.Add(run.Id);
        if (hasDependents.Value)
        {
            if (finish.State == WorkState.Succeeded)
            {
                UnblockDependents(run.Id, now);
            }
            else
            {
                FailDependents(run.Id, now);
            }
        }

        LogFinished(run, result, finish.State);
    }

    private OneTimeFinish OneTimeFinishOf(RunningWork run, WorkResult result, Exception? error)
    {
        if (error is not null)
        {
            Log.WorkThrew(_logger, error, run.Id, run.WorkerName);
        }

        return new OneTimeFinish(run.Id, StateOf(result), result.Output.ToJson(), FailureOf(error));
    }

    private static WorkState StateOf(WorkResult result) => result is WorkResult.SuccessResult ? WorkState.Succeeded : WorkState.Failed;

    private static string? FailureOf(Exception? error) => error is null ? null : $"{error.GetType().Name}: {error.Message}";

    private void LogFinished(RunningWork run, WorkResult result, WorkState state)
    {
        if (_options.DebugMode)
        {
            Log.WorkFinishedInfo(_logger, run.Id, run.WorkerName, result.ToString()!, state);
        }
        else
        {
            Log.WorkFinishedDebug(_logger, run.Id, run.WorkerName, result.ToString()!, state);
        }
    }

    /// <summary>
    /// Finishes, in one store call, the one-time results among the consecutive results from <paramref name="start"/> on
    /// whose works nothing depends on; marks their ops <see cref="CompleteOp.Finished"/>. The others, and all of them if
    /// the statement fails (but not the store), are applied op by op as usual.
    /// </summary>
    /// <remarks>
    /// Such a result is one narrow update of its own row and nothing else, so finishing several together is the same
    /// as finishing them one after the other; a result whose work has dependents, or that no longer runs here, is not
    /// finished by the call and takes the usual path.
    /// </remarks>
    private void FinishTogether(List<Op> batch, int start)
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
            if (c.IsPlainOneTime(this) && (block is null || !block.Exists(b => b.Op.Work.Id == c.Work.Id)))
            {
                block ??= [];
                block.Add((c, default));
            }
        }

        if (block is not { Count: > 1 })
        {
            return;
        }

        for (var k = 0; k < block.Count; k++)
        {
            var (op, _) = block[k];
            block[k] = (op, new OneTimeFinish(op.Work.Id, StateOf(op.Result), op.Result.Output.ToJson(), FailureOf(op.Error)));
        }

        IReadOnlySet<Guid> finished;
        _store.Savepoint("finish");
        try
        {
            finished = _store.FinishOneTimeWithoutDependents(block.ConvertAll(b => b.Finish));
            _store.Release("finish");
        }
        catch (Exception e) when (!_store.IsStoreFailure(e))
        {
            _store.RollbackTo("finish");
            return;
        }
        catch
        {
            // The store failed and the batch with it. As with results applied one by one, the runs no longer count as
            // running here, so the reconcile after the failed batch enqueues their works again (at least once).
            foreach (var (op, _) in block)
            {
                _running.Remove(op.Work.Id);
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
            _running.Remove(op.Work.Id);
            op.Work.Dispose();
            if (op.Error is not null)
            {
                Log.WorkThrew(_logger, op.Error, op.Work.Id, op.Work.WorkerName);
            }

            (finish.State == WorkState.Succeeded ? _metrics.Succeeded : _metrics.Failed).Add(1);
            _changed.Add(op.Work.Id);
            LogFinished(op.Work, op.Result, finish.State);
        }
    }

    /// <summary>Periodic work after a run, success or failure: next period, attempts reset, next run at end of this run + interval.</summary>
    private void ResetPeriodic(WorkRow row, long now)
    {
        _scheduleChanged = true;
        row.State = WorkState.Enqueued;
        row.PeriodCount++;
        row.RunAttemptCount = 0;
        row.LastEnqueueTime = now;
        row.ProgressJson = null;
        row.OverrideConstraints = false;
        row.ComputeNextRunAt();
    }

    private void StopRun(RunningWork run, StopReason reason, long now)
    {
        if (!_running.TryGetValue(run.Id, out var current) || current.RunId != run.RunId)
        {
            return;
        }

        _running.Remove(run.Id);
        run.Stop(reason);
        _metrics.Stopped.Add(1);
        var row = _store.Get(run.Id);
        if (row is null || row.State != WorkState.Running || row.RunningElsewhere)
        {
            return;
        }

        _scheduleChanged = true;
        // As WorkManager: back to ENQUEUED, the attempt counted, the last enqueue time kept, so the backoff runs
        // from when the work was enqueued and a work whose constraint returns soon is not held back long.
        row.State = WorkState.Enqueued;
        row.StopReason = reason;
        row.ProgressJson = null;
        row.ComputeNextRunAt();
        _store.Update(row);
        _changed.Add(row.Id);
        Log.WorkStopped(_logger, row.Id, row.WorkerName, reason);
    }

    private void UnblockDependents(Guid id, long now)
    {
        foreach (var dependentId in _store.Dependents(id))
        {
            var dependent = _store.Get(dependentId);
            if (dependent is null || dependent.State != WorkState.Blocked)
            {
                continue;
            }

            if (_store.PrerequisiteStates(dependentId).All(s => s == WorkState.Succeeded))
            {
                _dueCache.Clear();
                _scheduleChanged = true;
                dependent.State = WorkState.Enqueued;
                dependent.LastEnqueueTime = now;
                dependent.ComputeNextRunAt();
                _store.Update(dependent);
                _changed.Add(dependentId);
            }
        }
    }

    private void FailDependents(Guid id, long now)
    {
        foreach (var dependentId in _store.Dependents(id))
        {
            var dependent = _store.Get(dependentId);
            if (dependent is null || dependent.State.IsFinished())
            {
                continue;
            }

            StopIfRunning(dependentId, StopReason.CancelledByApp);
            dependent.State = WorkState.Failed;
            dependent.FailureReason = $"Prerequisite {id} failed.";
            _store.Update(dependent);
            _changed.Add(dependentId);
            FailDependents(dependentId, now);
        }
    }

    private int CancelRecursive(Guid id)
    {
        var row = _store.Get(id);
        if (row is null || row.State.IsFinished())
        {
            return 0;
        }

        if (StopIfRunning(id, StopReason.CancelledByApp))
        {
            row.StopReason = StopReason.CancelledByApp;
        }

        row.State = WorkState.Cancelled;
        row.ProgressJson = null;
        _store.Update(row);
        _changed.Add(id);
        var count = 1;
        foreach (var dependentId in _store.Dependents(id))
        {
            count += CancelRecursive(dependentId);
        }

        return count;
    }

    private bool StopIfRunning(Guid id, StopReason reason)
    {
        if (_running.Remove(id, out var run))
        {
            run.Stop(reason);
            _metrics.Stopped.Add(1);
            return true;
        }

        return false;
    }

    private void OnDevice(DeviceState state, long now)
    {
        _device = state;
        Log.DeviceStateChanged(_logger, state);
        foreach (var run in _running.Values.ToList())
        {
            if (run.ConstraintsOverridden)
            {
                continue;
            }

            var reason = run.Constraints.Evaluate(state);
            if (reason != StopReason.NotStopped)
            {
                StopRun(run, reason, now);
            }
        }
    }

    private int Shutdown(long now)
    {
        _stopping = true;
        var interrupted = 0;
        foreach (var run in _running.Values.ToList())
        {
            StopRun(run, StopReason.Shutdown, now);
            interrupted++;
        }

        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Log.SchedulerStopped(_logger, interrupted);
        return interrupted;
    }

    private sealed class RunningWork(Guid id, long runId, string workerName, int attempt, int generation, Constraints constraints, bool constraintsOverridden, bool isPeriodic) : IDisposable
    {
        public bool IsPeriodic { get; } = isPeriodic;

        private readonly CancellationTokenSource _cts = new();
        private volatile StopReason _reason;

        public Guid Id { get; } = id;

        public long RunId { get; } = runId;

        public string WorkerName { get; } = workerName;

        public int Attempt { get; } = attempt;

        public int Generation { get; } = generation;

        public Constraints Constraints { get; } = constraints;

        public bool ConstraintsOverridden { get; } = constraintsOverridden;

        public CancellationToken Token => _cts.Token;

        public StopReason Reason => _reason;

        public ITimer? Timeout { get; set; }

        public void Stop(StopReason reason)
        {
            _reason = reason;
            Timeout?.Dispose();
            try
            {
                _cts.Cancel();
            }
            catch (AggregateException)
            {
                // A worker's cancellation callback threw; the stop stands.
            }
        }

        public void Dispose()
        {
            Timeout?.Dispose();
        }
    }

    [DebuggerDisplay("{GetType().Name}")]
    private abstract class Op
    {
        /// <summary>Gets whether the op can make work due or stop a run elsewhere: other schedulers of a shared store must look.</summary>
        public virtual bool ChangesSchedule => false;

        public abstract void Apply(WorkManager manager, long now);

        public abstract void SetError(Exception e);

        public abstract void Complete();

        public abstract void Fail(Exception e);
    }

    private abstract class Op<T> : Op
    {
        private Exception? _error;
        private T _result = default!;

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Apply(WorkManager manager, long now) => _result = Run(manager, now);

        public override void SetError(Exception e) => _error = e;

        public override void Complete()
        {
            if (!HasCaller)
            {
                return;
            }

            if (_error is not null)
            {
                Completion.TrySetException(_error);
            }
            else
            {
                Completion.TrySetResult(_result);
            }
        }

        public override void Fail(Exception e)
        {
            if (HasCaller)
            {
                // An op that already failed on its own keeps its own error, not the batch's.
                Completion.TrySetException(_error ?? e);
            }
        }

        /// <summary>Gets whether someone awaits the op; internal ops (results, stops, ticks) have nobody to tell.</summary>
        protected virtual bool HasCaller => true;

        protected abstract T Run(WorkManager manager, long now);
    }

    private sealed class TickOp : Op<bool>
    {
        public static readonly TickOp Instance = new();

        protected override bool HasCaller => false;

        protected override bool Run(WorkManager manager, long now) => true;
    }

    private sealed class IdleOp : Op<bool>
    {
        public new TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override bool HasCaller => false;

        /// <summary>A stopped scheduler runs nothing more: it is idle.</summary>
        public override void Fail(Exception e) => Completion.TrySetResult();

        protected override bool Run(WorkManager manager, long now) => true;
    }

    private sealed class DelegateOp<T>(Guid id, Func<IWorkStore, long, T> action) : Op<T>
    {
        public override bool ChangesSchedule => true;

        protected override T Run(WorkManager manager, long now)
        {
            var result = action(manager._store, now);
            manager._changed.Add(id);
            return result;
        }
    }

    private sealed class EnqueueOp(List<WorkRequest> requests) : Op<bool>
    {
        public override bool ChangesSchedule => true;

        protected override bool Run(WorkManager manager, long now)
        {
            foreach (var request in requests)
            {
                manager.Insert(request.Spec, null, [], WorkState.Enqueued, now);
            }

            return true;
        }
    }

    private sealed class ChainOp(WorkContinuation continuation) : Op<UniqueWorkOutcome>
    {
        public override bool ChangesSchedule => true;

        protected override UniqueWorkOutcome Run(WorkManager manager, long now) => manager.EnqueueChain(continuation, now);
    }

    private sealed class UniquePeriodicOp(string name, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request) : Op<UniqueWorkOutcome>
    {
        public override bool ChangesSchedule => true;

        protected override UniqueWorkOutcome Run(WorkManager manager, long now) => manager.EnqueueUniquePeriodic(name, policy, request, now);
    }

    private sealed class CancelOp(WorkQuery query) : Op<int>
    {
        public override bool ChangesSchedule => true;

        protected override int Run(WorkManager manager, long now)
        {
            var count = 0;
            foreach (var row in manager._store.SelectForWrite(query))
            {
                count += manager.CancelRecursive(row.Id);
            }

            return count;
        }
    }

    private sealed class PruneOp : Op<int>
    {
        protected override int Run(WorkManager manager, long now)
        {
            var ids = manager._store.Prune(long.MaxValue);
            manager._changed.UnionWith(ids);
            return ids.Count;
        }
    }

    private sealed class CompleteOp(RunningWork work, WorkResult result, Exception? error) : Op<bool>
    {
        public RunningWork Work { get; } = work;

        public WorkResult Result { get; } = result;

        public Exception? Error { get; } = error;

        /// <summary>Gets or sets whether <see cref="FinishTogether"/> already finished the work: the op has nothing left to do.</summary>
        public bool Finished { get; set; }

        /// <summary>Gets or sets whether a <see cref="FinishTogether"/> call already considered this result.</summary>
        public bool TriedTogether { get; set; }

        protected override bool HasCaller => false;

        /// <summary>Whether the result finishes a one-time work that still runs here: one narrow update of its row.</summary>
        public bool IsPlainOneTime(WorkManager manager) =>
            !Finished && !Work.IsPeriodic && Result is not WorkResult.RetryResult
            && manager._running.TryGetValue(Work.Id, out var current) && current.RunId == Work.RunId;

        protected override bool Run(WorkManager manager, long now)
        {
            manager.ApplyResult(Work, Result, Error, now);
            return true;
        }
    }

    private sealed class StopOp(RunningWork run, StopReason reason) : Op<bool>
    {
        public override bool ChangesSchedule => true;

        protected override bool HasCaller => false;

        protected override bool Run(WorkManager manager, long now)
        {
            manager.StopRun(run, reason, now);
            return true;
        }
    }

    private sealed class ProgressOp(RunningWork run, string json) : Op<bool>
    {
        protected override bool Run(WorkManager manager, long now)
        {
            if (manager._running.TryGetValue(run.Id, out var current) && current.RunId == run.RunId)
            {
                manager._store.SetProgress(run.Id, json);
                manager._changed.Add(run.Id);
            }

            return true;
        }
    }

    private sealed class DeviceOp(DeviceState state) : Op<bool>
    {
        protected override bool HasCaller => false;

        protected override bool Run(WorkManager manager, long now)
        {
            manager.OnDevice(state, now);
            return true;
        }
    }

    private sealed class WakeOp : Op<bool>
    {
        public static readonly WakeOp Instance = new();

        protected override bool HasCaller => false;

        protected override bool Run(WorkManager manager, long now)
        {
            // Another process wrote: it may have cancelled work that runs here.
            Volatile.Write(ref manager._wakePending, 0);
            if (!manager._options.EnqueueOnly)
            {
                manager.Reconcile(now);
            }

            return true;
        }
    }

    private sealed class ShutdownOp : Op<int>
    {
        public override bool ChangesSchedule => true;

        protected override int Run(WorkManager manager, long now) => manager.Shutdown(now);
    }
}
