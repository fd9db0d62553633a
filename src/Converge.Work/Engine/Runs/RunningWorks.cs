using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>The runs this scheduler has going, by work id. Only the loop touches it.</summary>
internal sealed class RunningWorks(WorkMetrics metrics)
{
    private readonly Dictionary<Guid, RunningWork> _runs = [];
    private readonly HashSet<Guid> _ids = [];
    private long _runSeq;

    /// <summary>Gets how many work items run.</summary>
    public int Count => _runs.Count;

    /// <summary>Gets the ids of the work items that run: the due query leaves them out.</summary>
    public IReadOnlySet<Guid> Ids => _ids;

    /// <summary>Records a claimed row as running here.</summary>
    /// <param name="row">The row, as claimed.</param>
    /// <param name="attempt">The attempt count before the claim: what the worker sees.</param>
    /// <returns>The run.</returns>
    public RunningWork Add(WorkRow row, int attempt)
    {
        var run = new RunningWork(row.Id, ++_runSeq, row.WorkerName, attempt, row.Generation, row.Constraints, row.OverrideConstraints, row.IsPeriodic);
        _runs[row.Id] = run;
        _ids.Add(row.Id);
        return run;
    }

    /// <summary>Whether a work item runs here.</summary>
    /// <param name="id">The work.</param>
    /// <returns><see langword="true"/> if it does.</returns>
    public bool Contains(Guid id) => _runs.ContainsKey(id);

    /// <summary>Gets a work item's run here, if it has one.</summary>
    /// <param name="id">The work.</param>
    /// <param name="run">The run, when there is one.</param>
    /// <returns><see langword="true"/> if the work runs here.</returns>
    public bool TryGet(Guid id, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out RunningWork run) => _runs.TryGetValue(id, out run);

    /// <summary>Whether this run is still the work's current run here (not stopped, cancelled or replaced by a later run).</summary>
    /// <param name="run">The run.</param>
    /// <returns><see langword="true"/> if it is.</returns>
    public bool IsCurrent(RunningWork run) => _runs.TryGetValue(run.Id, out var current) && current.RunId == run.RunId;

    /// <summary>Forgets a run without stopping it: it ended, or its result was lost with its batch.</summary>
    /// <param name="id">The work.</param>
    public void Remove(Guid id)
    {
        _runs.Remove(id);
        _ids.Remove(id);
    }

    /// <summary>Stops a work item's run here, if it has one, and forgets it.</summary>
    /// <param name="id">The work.</param>
    /// <param name="reason">Why; the worker sees it.</param>
    /// <returns>Whether a run was stopped.</returns>
    public bool Stop(Guid id, StopReason reason)
    {
        if (!_runs.Remove(id, out var run))
        {
            return false;
        }

        _ids.Remove(id);
        run.Stop(reason);
        metrics.Stopped.Add(1);
        return true;
    }

    /// <summary>A copy of the runs, for walking while some are stopped.</summary>
    /// <returns>The runs.</returns>
    public List<RunningWork> Snapshot() => [.. _runs.Values];
}
