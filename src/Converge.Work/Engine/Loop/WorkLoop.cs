using System.Threading.Channels;
using Converge.Work.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>The single writer: takes ops from a queue and applies them in batches, one transaction per batch.</summary>
/// <remarks>
/// <para>
/// A batch applies every queued op (enqueues, results, cancels), each in a savepoint so that one op's failure does not
/// undo the others, then claims the next due work items, and commits; only then are the ops' callers told, so what they
/// were told survives a crash. Concurrent callers are thus combined into one transaction.
/// </para>
/// <para>
/// A caller that finds no batch in progress and the store free commits one batch itself, on its own thread, saving two
/// thread hops (see <see cref="SubmitAsync{T}"/>); a store on a database server never allows that, so its batches all
/// run on the loop.
/// </para>
/// </remarks>
internal sealed class WorkLoop(WorkEngine engine, ILogger logger)
{
    private const int MaxBatch = 2048;

    private readonly Channel<Op> _ops = Channel.CreateUnbounded<Op>(new UnboundedChannelOptions { SingleReader = false });

    /// <summary>Held by whoever runs a batch: the loop, or a caller committing inline.</summary>
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<Op> _batch = new(64);
    private readonly List<TaskCompletionSource> _idleWaiters = [];
    private Exception? _crash;

    /// <summary>Gets the store; the loop is made before it, so that a wake-up the store sends while it opens has a queue to go to.</summary>
    private IWorkStore Store => engine.Store;

    /// <summary>Gets why the loop crashed, if it did.</summary>
    public Exception? Crash => _crash;

    /// <summary>Starts the loop.</summary>
    /// <returns>The loop's task: it completes when the queue is closed and drained, or faults if the loop crashed.</returns>
    public Task RunAsync() => Task.Run(LoopAsync);

    /// <summary>Queues an op nobody awaits; if the loop has stopped, the op is failed at once.</summary>
    /// <param name="op">The op.</param>
    public void Post(Op op)
    {
        if (!_ops.Writer.TryWrite(op))
        {
            op.Fail(StoppedError());
        }
    }

    /// <summary>Queues an op and waits until its batch commits.</summary>
    /// <param name="op">The op.</param>
    /// <param name="cancellationToken">Ends the wait; the op is still applied.</param>
    /// <typeparam name="T">The op's result.</typeparam>
    /// <returns>The op's result.</returns>
    public async Task<T> SubmitAsync<T>(Op<T> op, CancellationToken cancellationToken)
    {
        Post(op);
        if (!cancellationToken.IsCancellationRequested)
        {
            // Commits the op on this thread when no batch is in progress and the store is free right now; never waits,
            // so the caller's token keeps control of the wait below.
            await ProcessInlineAsync().ConfigureAwait(false);
        }

        return await op.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Closes the queue: ops posted from now on fail; the loop ends once it has drained what was queued.</summary>
    public void Close() => _ops.Writer.TryComplete();

    /// <summary>When no batch is in progress, commits one batch on this thread instead of waking the loop.</summary>
    /// <remarks>One batch at most: whatever arrives meanwhile is the loop's, so a caller never drains for others.</remarks>
    private async ValueTask ProcessInlineAsync()
    {
        if (!_gate.Wait(0))
        {
            return;
        }

        try
        {
            if (_crash is null && !engine.IsDisposed && !_ops.Reader.Completion.IsCompleted)
            {
                await ProcessOneBatchAsync(inline: true).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // The op's own completion says how it went; this caller is not the one to hear about the loop's failure.
            RecordCrash(e);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            do
            {
                await _gate.WaitAsync().ConfigureAwait(false);
                try
                {
                    if (_crash is not null)
                    {
                        break;
                    }

                    // The loop's turn: every queued op, a batch per transaction, until the queue is empty.
                    do
                    {
                        await ProcessOneBatchAsync(inline: false).ConfigureAwait(false);
                    }
                    while (_ops.Reader.Count > 0);
                }
                finally
                {
                    _gate.Release();
                }
            }
            while (await _ops.Reader.WaitToReadAsync().ConfigureAwait(false));
        }
        catch (Exception e)
        {
            RecordCrash(e);
            throw;
        }
        finally
        {
            await _gate.WaitAsync().ConfigureAwait(false);
            try
            {
                while (_ops.Reader.TryRead(out var op))
                {
                    op.Fail(StoppedError());
                }

                foreach (var waiter in _idleWaiters)
                {
                    waiter.TrySetResult();
                }

                _idleWaiters.Clear();
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    /// <summary>The loop failed outside any batch's handling: it stops, and every later op fails with this as the cause.</summary>
    private void RecordCrash(Exception e)
    {
        Log.LoopCrashed(logger, e);
        _crash = e;
        _ops.Writer.TryComplete(e);
    }

    private Exception StoppedError() => _crash is { } crash
        ? new InvalidOperationException("The work scheduler loop crashed; see the inner exception.", crash)
        : new ObjectDisposedException(nameof(WorkManager), "The work manager has stopped.");

    private async ValueTask ProcessOneBatchAsync(bool inline)
    {
        // Inline, the caller's thread must never wait on the store: it takes the write lock only if it is free now,
        // and otherwise leaves its op to the loop, which may wait.
        if (inline && !Store.TryBeginNow())
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
            await ProcessBatchAsync(_batch, begun: inline).ConfigureAwait(false);
        }
        else
        {
            await Store.RollbackAsync().ConfigureAwait(false);
        }

        if (_ops.Reader.Count == 0)
        {
            ResolveIdleWaiters();
        }
    }

    private void ResolveIdleWaiters()
    {
        if (_idleWaiters.Count == 0 || !engine.IsIdle)
        {
            return;
        }

        foreach (var waiter in _idleWaiters)
        {
            waiter.TrySetResult();
        }

        _idleWaiters.Clear();
    }

    private async ValueTask ProcessBatchAsync(List<Op> batch, bool begun)
    {
        var now = engine.Now();
        var claimed = new List<ClaimedRun>();
        try
        {
            if (!begun)
            {
                await engine.Leases.RenewIfDueAsync(now).ConfigureAwait(false);
                await Store.BeginAsync().ConfigureAwait(false);
            }

            Store.BatchTime = now;
            engine.Changes.BeginBatch();
            await engine.Leases.ReconcileIfNeededAsync(now).ConfigureAwait(false);

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

                if (!op.KeepsDueReadAhead)
                {
                    engine.Changes.Due();
                }

                if (op is CompleteOp complete)
                {
                    if (!single && !complete.Finished && !complete.TriedTogether)
                    {
                        await engine.Results.FinishTogetherAsync(batch, i).ConfigureAwait(false);
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
                        await op.ApplyAsync(engine, now).ConfigureAwait(false);
                    }
                    catch (Exception e) when (!Store.IsStoreFailure(e))
                    {
                        await Store.RollbackAsync().ConfigureAwait(false);
                        op.SetError(e);
                        engine.Leases.ReconcileLater();
                        engine.Changes.ClearWorks();
                        await Store.BeginAsync().ConfigureAwait(false);
                    }

                    continue;
                }

                await Store.SavepointAsync("op").ConfigureAwait(false);
                try
                {
                    await op.ApplyAsync(engine, now).ConfigureAwait(false);
                    await Store.ReleaseAsync("op").ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    await Store.RollbackToAsync("op").ConfigureAwait(false);
                    op.SetError(e);
                    // The op may have changed in-memory run state before its SQL failed; recheck at the next batch.
                    engine.Leases.ReconcileLater();
                }
            }

            if (engine.CanClaim)
            {
                await engine.Claims.ClaimAsync(now, claimed).ConfigureAwait(false);
            }

            if (userWrites || engine.Changes.ScheduleChanged || engine.Changes.Works.Count > 0)
            {
                Store.SignalWrites(reconcile: userWrites || engine.Changes.ScheduleChanged);
            }

            await Store.CommitAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.BatchFailed(logger, e);
            try
            {
                await Store.RollbackAsync().ConfigureAwait(false);
            }
            catch (Exception rollback)
            {
                Log.BatchFailed(logger, rollback); // SQLite may already have rolled back (I/O error, disk full).
            }

            foreach (var op in batch)
            {
                op.Fail(e);
                if (op is CompleteOp c && engine.Runs.IsCurrent(c.Work))
                {
                    // Its result was not stored, and its run is over: the reconcile at the next batch enqueues it again.
                    engine.Runs.Remove(c.Work.Id);
                    c.Work.Dispose();
                }
            }

            foreach (var (row, run, _) in claimed)
            {
                engine.Runs.Remove(row.Id);
                run.Dispose();
            }

            engine.Changes.ClearWorks();
            engine.Claims.DropReadAhead();
            engine.Leases.ReconcileLater();
            engine.RetryLater();
            return;
        }

        foreach (var op in batch)
        {
            op.Complete();
        }

        engine.Committed(claimed);
        await engine.AfterBatchAsync().ConfigureAwait(false);
    }
}
