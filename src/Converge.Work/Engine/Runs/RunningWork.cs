namespace Converge.Work;

/// <summary>One run of a work item on this scheduler: what it was started with, and how to stop it.</summary>
internal sealed class RunningWork(Guid id, long runId, string workerName, int attempt, int generation, Constraints constraints, bool constraintsOverridden, bool isPeriodic) : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private volatile StopReason _reason;

    public Guid Id { get; } = id;

    /// <summary>Gets the number of this run on this scheduler: a result or a stop of an earlier run of the same work is told apart by it.</summary>
    public long RunId { get; } = runId;

    public string WorkerName { get; } = workerName;

    public int Attempt { get; } = attempt;

    public int Generation { get; } = generation;

    public Constraints Constraints { get; } = constraints;

    /// <summary>
    /// Gets or sets whether the run ignores the device state: its constraints count as met, and a lost one does not stop it.
    /// Set when the run starts from its stored flag, or while it runs by a test driver; only the loop touches it.
    /// </summary>
    public bool ConstraintsOverridden { get; set; } = constraintsOverridden;

    public bool IsPeriodic { get; } = isPeriodic;

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
