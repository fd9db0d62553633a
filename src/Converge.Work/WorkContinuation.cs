namespace Converge.Work;

/// <summary>A chain of work: each step runs after every work of the step before it has succeeded. Immutable.</summary>
/// <remarks>
/// A failed work fails every work after it; a cancelled one cancels them. The outputs of a step merge into the input of
/// the next through each request's <see cref="InputMerger"/>.
/// </remarks>
public sealed class WorkContinuation
{
    internal const string CombineWorkerName = "converge.combine";

    private readonly IChainEnqueuer _enqueuer;

    internal WorkContinuation(
        IChainEnqueuer enqueuer,
        string? uniqueName,
        ExistingWorkPolicy policy,
        IReadOnlyList<OneTimeWorkRequest> work,
        IReadOnlyList<WorkContinuation> parents)
    {
        if (work.Count == 0)
        {
            throw new ArgumentException("A continuation needs at least one work request.", nameof(work));
        }

        foreach (var w in work)
        {
            ArgumentNullException.ThrowIfNull(w, nameof(work));
        }

        _enqueuer = enqueuer;
        UniqueName = uniqueName;
        Policy = policy;
        Work = work;
        Parents = parents;
    }

    internal string? UniqueName { get; }

    internal ExistingWorkPolicy Policy { get; }

    internal IReadOnlyList<OneTimeWorkRequest> Work { get; }

    internal IReadOnlyList<WorkContinuation> Parents { get; }

    /// <summary>Gets the ids of every work in the chain, prerequisites first.</summary>
    public IReadOnlyList<Guid> Ids => Flatten().SelectMany(c => c.Work).Select(w => w.Id).Distinct().ToList();

    /// <summary>Adds a step that runs after this one.</summary>
    /// <param name="work">The work of the step, run in parallel.</param>
    /// <returns>The extended continuation.</returns>
    public WorkContinuation Then(params OneTimeWorkRequest[] work) =>
        new(_enqueuer, UniqueName, ExistingWorkPolicy.Keep, work, [this]);

    /// <summary>Joins continuations: the result's next step runs after all of them.</summary>
    /// <param name="continuations">The continuations to join; at least one.</param>
    /// <returns>A continuation ending in a work item that passes the merged outputs of all of them on (array-creating merger).</returns>
    public static WorkContinuation Combine(params WorkContinuation[] continuations)
    {
        if (continuations is null || continuations.Length == 0)
        {
            throw new ArgumentException("Combine needs at least one continuation.", nameof(continuations));
        }

        var combine = new OneTimeWorkRequestBuilder(CombineWorkerName).SetInputMerger(InputMerger.ArrayCreating).Build();
        return new WorkContinuation(continuations[0]._enqueuer, null, ExistingWorkPolicy.Keep, [combine], continuations);
    }

    /// <summary>Enqueues every work of the chain not yet enqueued, in one transaction.</summary>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>What was done for the unique name, or <see cref="UniqueWorkOutcome.Enqueued"/> when the chain has none.</returns>
    public Task<UniqueWorkOutcome> EnqueueAsync(CancellationToken cancellationToken = default) => _enqueuer.EnqueueChainAsync(this, cancellationToken);

    /// <summary>Streams the infos of every work in the chain.</summary>
    /// <param name="manager">The manager to watch through.</param>
    /// <param name="cancellationToken">A token that ends the stream.</param>
    /// <returns>The infos.</returns>
    public IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchAsync(IWorkManager manager, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        return manager.WatchWorkInfosAsync(new WorkQuery { Ids = Ids }, cancellationToken);
    }

    /// <summary>Parents before children, each continuation once.</summary>
    internal IReadOnlyList<WorkContinuation> Flatten()
    {
        var order = new List<WorkContinuation>();
        var seen = new HashSet<WorkContinuation>(ReferenceEqualityComparer.Instance);
        Visit(this);
        return order;

        void Visit(WorkContinuation c)
        {
            if (!seen.Add(c))
            {
                return;
            }

            foreach (var p in c.Parents)
            {
                Visit(p);
            }

            order.Add(c);
        }
    }
}

internal interface IChainEnqueuer
{
    Task<UniqueWorkOutcome> EnqueueChainAsync(WorkContinuation continuation, CancellationToken cancellationToken);
}
