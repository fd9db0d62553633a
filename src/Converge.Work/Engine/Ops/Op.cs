using System.Diagnostics;

namespace Converge.Work;

/// <summary>A request to the scheduler's loop, applied in a batch's transaction and completed once the batch commits.</summary>
[DebuggerDisplay("{GetType().Name}")]
internal abstract class Op
{
    /// <summary>Gets whether the op can make work due or stop a run elsewhere: other schedulers of a shared store must look.</summary>
    public virtual bool ChangesSchedule => false;

    /// <summary>Gets whether the op leaves what is due as it was (a result or progress of a run), so the claim's read-ahead stays valid.</summary>
    public virtual bool KeepsDueReadAhead => false;

    /// <summary>Applies the op to the store, inside the batch's transaction.</summary>
    /// <param name="engine">The scheduler's parts.</param>
    /// <param name="now">The batch time, in Unix milliseconds.</param>
    /// <returns>A task that completes when the op is applied.</returns>
    public abstract ValueTask ApplyAsync(WorkEngine engine, long now);

    /// <summary>Records that the op failed on its own; its batch goes on, and its caller gets the error once the batch commits.</summary>
    /// <param name="e">Why it failed.</param>
    public abstract void SetError(Exception e);

    /// <summary>Tells the caller how the op went, once its batch committed.</summary>
    public abstract void Complete();

    /// <summary>Tells the caller that the op's batch failed, or that the loop stopped before applying it.</summary>
    /// <param name="e">Why.</param>
    public abstract void Fail(Exception e);
}

/// <summary>An op whose caller awaits a result.</summary>
/// <typeparam name="T">The result.</typeparam>
internal abstract class Op<T> : Op
{
    private Exception? _error;
    private T _result = default!;

    /// <summary>Gets what the caller awaits.</summary>
    public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets whether someone awaits the op; internal ops (results, stops, ticks) have nobody to tell.</summary>
    protected virtual bool HasCaller => true;

    public override async ValueTask ApplyAsync(WorkEngine engine, long now) => _result = await RunAsync(engine, now).ConfigureAwait(false);

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

    /// <summary>Applies the op and returns its result.</summary>
    /// <param name="engine">The scheduler's parts.</param>
    /// <param name="now">The batch time, in Unix milliseconds.</param>
    /// <returns>The result for the caller.</returns>
    protected abstract ValueTask<T> RunAsync(WorkEngine engine, long now);
}
