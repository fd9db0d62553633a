namespace Converge.Work;

/// <summary>What the current batch changed, as the parts that change work record it and the loop reads it at the end.</summary>
/// <remarks>
/// Three facts, each read by one consumer: the work items whose info changed (watchers are told after the commit), whether
/// the schedule changed (other nodes of a shared store must look), and whether what is due may have changed (the claim
/// drops its read-ahead). The last outlives a failed batch on purpose: the next claim must read afresh.
/// </remarks>
internal sealed class BatchChanges
{
    private readonly HashSet<Guid> _works = [];

    /// <summary>Gets the work items whose info changed since watchers were last told.</summary>
    public IReadOnlySet<Guid> Works => _works;

    /// <summary>Gets whether this batch made work due or re-enqueued it (a retry, a period, a stop, an unblocked dependent): other nodes may look.</summary>
    public bool ScheduleChanged { get; private set; }

    /// <summary>Gets whether what is due, or its order, may have changed since the claim last read it.</summary>
    public bool DueChanged { get; private set; }

    /// <summary>Starts a batch: nothing in it has changed the schedule yet.</summary>
    public void BeginBatch() => ScheduleChanged = false;

    /// <summary>Records that a work item's info changed.</summary>
    /// <param name="id">The work.</param>
    public void Work(Guid id) => _works.Add(id);

    /// <summary>Records that several work items' info changed.</summary>
    /// <param name="ids">The work items.</param>
    public void Work(IEnumerable<Guid> ids) => _works.UnionWith(ids);

    /// <summary>Records that the batch changed the schedule.</summary>
    public void Schedule() => ScheduleChanged = true;

    /// <summary>Records that what is due may have changed.</summary>
    public void Due() => DueChanged = true;

    /// <summary>Reads and resets <see cref="DueChanged"/>; the claim calls it before it uses its read-ahead.</summary>
    /// <returns>Whether what is due may have changed.</returns>
    public bool TakeDueChanged()
    {
        var changed = DueChanged;
        DueChanged = false;
        return changed;
    }

    /// <summary>Forgets the changed work items: watchers were told, or the batch that changed them rolled back.</summary>
    public void ClearWorks() => _works.Clear();
}
