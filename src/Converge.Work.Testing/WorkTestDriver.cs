using Converge.Work.Storage;

namespace Converge.Work.Testing;

/// <summary>WorkManager's <c>TestDriver</c>: tells the scheduler that a work item's delay or constraints are met, so tests need not wait.</summary>
public sealed class WorkTestDriver
{
    private readonly WorkManager _manager;

    /// <summary>Initializes a driver for a started scheduler.</summary>
    /// <param name="manager">The scheduler.</param>
    /// <exception cref="InvalidOperationException">
    /// This Converge.Work.Testing and the app's Converge.Work are of different releases: the driver changes stored work
    /// through the store contract, which may change between releases.
    /// </exception>
    public WorkTestDriver(WorkManager manager)
    {
        ArgumentNullException.ThrowIfNull(manager);
        WorkStoreContract.ThrowIfUnsupported(WorkStoreContract.Version, typeof(WorkTestDriver).Assembly);
        _manager = manager;
    }

    /// <summary>Treats every constraint of a work item as met until its next run finishes.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the change is stored.</returns>
    /// <exception cref="ArgumentException">No unfinished work has that id.</exception>
    public Task SetAllConstraintsMetAsync(Guid id, CancellationToken cancellationToken = default) =>
        _manager.EditWorkInStoreAsync(
            id,
            async (store, _) =>
            {
                var row = await UnfinishedAsync(store, id).ConfigureAwait(false);
                row.OverrideConstraints = true;
                await store.UpdateAsync(row).ConfigureAwait(false);
                return true;
            },
            cancellationToken);

    /// <summary>Makes a work item's initial delay elapse now.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the change is stored.</returns>
    /// <exception cref="ArgumentException">No enqueued work in its first run has that id.</exception>
    public Task SetInitialDelayMetAsync(Guid id, CancellationToken cancellationToken = default) =>
        MakeDueNowAsync(
            id,
            row => row.State == WorkState.Enqueued && row.PeriodCount == 0 && row.RunAttemptCount == 0,
            row => $"Work {id} is not waiting for its initial delay (state {row.State}, period {row.PeriodCount}, attempt {row.RunAttemptCount}).",
            cancellationToken);

    /// <summary>Makes the current period of a periodic work elapse now.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the change is stored.</returns>
    /// <exception cref="ArgumentException">No enqueued periodic work has that id.</exception>
    public Task SetPeriodDelayMetAsync(Guid id, CancellationToken cancellationToken = default) =>
        MakeDueNowAsync(
            id,
            row => row.IsPeriodic && row.State == WorkState.Enqueued,
            _ => $"Work {id} is not an enqueued periodic work.",
            cancellationToken);

    private Task<bool> MakeDueNowAsync(Guid id, Func<WorkRow, bool> applies, Func<WorkRow, string> refusal, CancellationToken cancellationToken) =>
        _manager.EditWorkInStoreAsync(
            id,
            async (store, now) =>
            {
                var row = await UnfinishedAsync(store, id).ConfigureAwait(false);
                if (!applies(row))
                {
                    throw new ArgumentException(refusal(row), nameof(id));
                }

                row.NextRunAt = now;
                await store.UpdateAsync(row).ConfigureAwait(false);
                return true;
            },
            cancellationToken);

    private static async ValueTask<WorkRow> UnfinishedAsync(IWorkStore store, Guid id)
    {
        var row = await store.GetAsync(id).ConfigureAwait(false) ?? throw new ArgumentException($"There is no work with id {id}.", nameof(id));
        if (row.State.IsFinished())
        {
            throw new ArgumentException($"Work {id} is already {row.State}.", nameof(id));
        }

        return row;
    }
}
