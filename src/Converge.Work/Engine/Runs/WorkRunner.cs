using System.Collections.Concurrent;
using Converge.Work.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>Runs claimed work items on the thread pool, each worker in a service scope of its own, and sends their results back to the loop.</summary>
internal sealed class WorkRunner(
    WorkManagerOptions options,
    WorkerRegistry workers,
    IServiceProvider services,
    TimeProvider time,
    WorkMetrics metrics,
    ILogger logger,
    IOpQueue ops)
{
    private readonly ConcurrentDictionary<Task, byte> _tasks = new();

    /// <summary>Starts a claimed run, after the claim committed.</summary>
    /// <param name="row">The row as claimed.</param>
    /// <param name="run">The run.</param>
    /// <param name="input">The input, merged with the prerequisites' outputs.</param>
    public void Start(WorkRow row, RunningWork run, WorkData input)
    {
        metrics.Started.Add(1);
        if (options.DebugMode)
        {
            Log.WorkStartedInfo(logger, row.Id, row.WorkerName, run.Attempt);
        }
        else
        {
            Log.WorkStartedDebug(logger, row.Id, row.WorkerName, run.Attempt);
        }

        run.Timeout = options.ExecutionTimeout == Timeout.InfiniteTimeSpan ? null : time.CreateTimer(
            static s =>
            {
                var (queue, r) = ((IOpQueue, RunningWork))s!;
                queue.Post(new StopOp(r, StopReason.Timeout));
            },
            (ops, run),
            options.ExecutionTimeout,
            Timeout.InfiniteTimeSpan);

        var context = new WorkContext(
            row.Id,
            row.WorkerName,
            input,
            row.Tags,
            run.Attempt,
            row.Generation,
            run.Token,
            (progress, ct) => new ValueTask(ops.SubmitAsync(new ProgressOp(run, progress.ToJson()), ct)),
            () => run.Reason);

        var task = Task.Run(() => ExecuteAsync(run, context));
        _tasks.TryAdd(task, 0);
        _ = task.ContinueWith(static (t, s) => ((ConcurrentDictionary<Task, byte>)s!).TryRemove(t, out _), _tasks, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Waits for every worker that runs to return.</summary>
    /// <param name="cancellationToken">Ends the wait; workers that ignore their stop token are then abandoned.</param>
    /// <returns>A task that completes when no worker runs.</returns>
    public Task WhenAllReturnedAsync(CancellationToken cancellationToken) => Task.WhenAll(_tasks.Keys).WaitAsync(cancellationToken);

    private async Task ExecuteAsync(RunningWork run, WorkContext context)
    {
        WorkResult result;
        Exception? error = null;
        try
        {
            var scope = services.GetService<IServiceScopeFactory>()?.CreateAsyncScope();
            try
            {
                var worker = workers.Create(run.WorkerName, scope?.ServiceProvider ?? services);
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
        ops.Post(new CompleteOp(run, result, error));
    }
}
