namespace Converge.Work;

/// <summary>The code a work item runs. Resolved from dependency injection for each run, under the stable name it was registered with.</summary>
public interface IWorker
{
    /// <summary>Does the work.</summary>
    /// <param name="context">The run's id, input, attempt count and stop token.</param>
    /// <returns>Success, failure, or retry. An exception counts as failure.</returns>
    /// <remarks>
    /// Observe <see cref="WorkContext.StopToken"/>: it fires when the work is cancelled, loses a constraint, times out,
    /// or the scheduler shuts down. A stopped run's result is ignored.
    /// </remarks>
    Task<WorkResult> DoWorkAsync(WorkContext context);
}

/// <summary>What a worker knows about the run it is doing.</summary>
public sealed class WorkContext
{
    private readonly Func<WorkData, CancellationToken, ValueTask> _setProgress;

    internal WorkContext(
        Guid id,
        string workerName,
        WorkData input,
        IReadOnlySet<string> tags,
        int runAttemptCount,
        int generation,
        CancellationToken stopToken,
        Func<WorkData, CancellationToken, ValueTask> setProgress,
        Func<StopReason> stopReason)
    {
        Id = id;
        WorkerName = workerName;
        InputData = input;
        Tags = tags;
        RunAttemptCount = runAttemptCount;
        Generation = generation;
        StopToken = stopToken;
        _setProgress = setProgress;
        _stopReason = stopReason;
    }

    private readonly Func<StopReason> _stopReason;

    /// <summary>Gets the id of the work.</summary>
    public Guid Id { get; }

    /// <summary>Gets the stable name of the worker, the "task name" of callback dispatchers.</summary>
    public string WorkerName { get; }

    /// <summary>Gets the input data, merged with the outputs of prerequisites.</summary>
    public WorkData InputData { get; }

    /// <summary>Gets the tags of the work, including the worker's name.</summary>
    public IReadOnlySet<string> Tags { get; }

    /// <summary>Gets how many times this work has been started before: 0 on the first run.</summary>
    public int RunAttemptCount { get; }

    /// <summary>Gets the generation of the work's definition; it grows when the work is updated.</summary>
    public int Generation { get; }

    /// <summary>Gets a token that fires when the run must stop; see <see cref="StopReason"/> for why.</summary>
    public CancellationToken StopToken { get; }

    /// <summary>Gets why the run was stopped, or <see cref="Work.StopReason.NotStopped"/>.</summary>
    public StopReason StopReason => _stopReason();

    /// <summary>Publishes progress, visible in <see cref="WorkInfo.Progress"/> while the work runs.</summary>
    /// <param name="progress">The progress data.</param>
    /// <param name="cancellationToken">A token to cancel the update.</param>
    /// <returns>A task that completes when the progress is stored.</returns>
    public ValueTask SetProgressAsync(WorkData progress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(progress);
        return _setProgress(progress, cancellationToken);
    }
}
