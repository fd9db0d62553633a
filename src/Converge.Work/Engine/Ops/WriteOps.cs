using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>Enqueues one-time and periodic requests.</summary>
internal sealed class EnqueueOp(List<WorkRequest> requests) : Op<bool>
{
    public override bool ChangesSchedule => true;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        foreach (var request in requests)
        {
            await engine.Enqueuer.InsertAsync(request.Spec, null, [], WorkState.Enqueued, now).ConfigureAwait(false);
        }

        return true;
    }
}

/// <summary>Enqueues a chain, unique or not.</summary>
internal sealed class ChainOp(WorkContinuation continuation) : Op<UniqueWorkOutcome>
{
    public override bool ChangesSchedule => true;

    protected override ValueTask<UniqueWorkOutcome> RunAsync(WorkEngine engine, long now) => engine.Enqueuer.EnqueueChainAsync(continuation, now);
}

/// <summary>Enqueues unique periodic work under a policy.</summary>
internal sealed class UniquePeriodicOp(string name, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request) : Op<UniqueWorkOutcome>
{
    public override bool ChangesSchedule => true;

    protected override ValueTask<UniqueWorkOutcome> RunAsync(WorkEngine engine, long now) => engine.Enqueuer.EnqueueUniquePeriodicAsync(name, policy, request, now);
}

/// <summary>Cancels the unfinished work items a query selects, and their dependents; the result is how many.</summary>
internal sealed class CancelOp(WorkQuery query) : Op<int>
{
    public override bool ChangesSchedule => true;

    protected override async ValueTask<int> RunAsync(WorkEngine engine, long now)
    {
        var count = 0;
        foreach (var row in await engine.Store.SelectForWriteAsync(query).ConfigureAwait(false))
        {
            count += await engine.Dependents.CancelAsync(row.Id).ConfigureAwait(false);
        }

        return count;
    }
}

/// <summary>Deletes every finished work that no unfinished work depends on; the result is how many.</summary>
internal sealed class PruneOp : Op<int>
{
    protected override async ValueTask<int> RunAsync(WorkEngine engine, long now)
    {
        var ids = await engine.Store.PruneAsync(long.MaxValue).ConfigureAwait(false);
        engine.Changes.Work(ids);
        return ids.Count;
    }
}

/// <summary>Changes one work in the store with code of the caller's (the test driver's), inside the batch.</summary>
internal sealed class EditOp<T>(Guid id, Func<IWorkStore, long, ValueTask<T>> edit) : Op<T>
{
    public override bool ChangesSchedule => true;

    protected override async ValueTask<T> RunAsync(WorkEngine engine, long now)
    {
        var result = await edit(engine.Store, now).ConfigureAwait(false);
        engine.Changes.Work(id);
        if (engine.Runs.TryGet(id, out var run) && !run.ConstraintsOverridden)
        {
            // A run in progress follows the stored flag too: its constraints count as met until it finishes.
            run.ConstraintsOverridden = (await engine.Store.GetAsync(id).ConfigureAwait(false))?.OverrideConstraints ?? false;
        }

        return result;
    }
}
