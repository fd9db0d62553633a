namespace Converge.Work;

/// <summary>A run ended with a result: stored by the loop, so results finishing together commit together.</summary>
internal sealed class CompleteOp(RunningWork work, WorkResult result, Exception? error) : Op<bool>
{
    public RunningWork Work { get; } = work;

    public WorkResult Result { get; } = result;

    public Exception? Error { get; } = error;

    /// <summary>Gets or sets whether the result was already stored with others (<see cref="RunResults.FinishTogetherAsync"/>): the op has nothing left to do.</summary>
    public bool Finished { get; set; }

    /// <summary>Gets or sets whether a <see cref="RunResults.FinishTogetherAsync"/> call already considered this result.</summary>
    public bool TriedTogether { get; set; }

    public override bool KeepsDueReadAhead => true;

    protected override bool HasCaller => false;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        await engine.Results.ApplyAsync(Work, Result, Error, now).ConfigureAwait(false);
        return true;
    }
}

/// <summary>A run must stop (its timeout): the work is enqueued again with the reason.</summary>
internal sealed class StopOp(RunningWork run, StopReason reason) : Op<bool>
{
    public override bool ChangesSchedule => true;

    protected override bool HasCaller => false;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        await engine.Results.StopAsync(run, reason, now).ConfigureAwait(false);
        return true;
    }
}

/// <summary>A run reported progress: stored while the run is still this one.</summary>
internal sealed class ProgressOp(RunningWork run, string json) : Op<bool>
{
    public override bool KeepsDueReadAhead => true;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        if (engine.Runs.IsCurrent(run))
        {
            await engine.Store.SetProgressAsync(run.Id, json).ConfigureAwait(false);
            engine.Changes.Work(run.Id);
        }

        return true;
    }
}
