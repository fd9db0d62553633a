using Converge.Work;

namespace Converge.Client;

/// <summary>Schedules the background sync: the unique periodic work <see cref="UniqueName"/>, run by <see cref="SyncWorker"/>.</summary>
public static class DataSyncWork
{
    /// <summary>The unique name of the periodic sync work: reserved for Converge's background sync.</summary>
    /// <remarks>
    /// Stored with the work, so it never changes. It differs from the worker's name (<see cref="SyncWorker.Name"/>), and
    /// both carry Converge's prefix, so an app's own work (such as the "dataSyncTask" of WorkManager's examples) never
    /// takes the place of the background sync.
    /// </remarks>
    public const string UniqueName = "Converge.DataSync";

    /// <summary>The default interval between background syncs: 15 minutes, WorkManager's minimum.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMinutes(15);

    /// <summary>The default initial backoff after a failed sync: 30 seconds, doubling at each retry.</summary>
    public static readonly TimeSpan DefaultBackoff = TimeSpan.FromSeconds(30);

    /// <summary>Enqueues the background sync as unique periodic work <see cref="UniqueName"/>: every 15 minutes, only with a network connection, exponential backoff.</summary>
    /// <param name="workManager">The work manager; <see cref="SyncWorker"/> must be registered with it (<c>AddConvergeSync()</c>).</param>
    /// <param name="interval">The interval; <see cref="DefaultInterval"/> when <see langword="null"/>. It must respect the manager's minimum periodic interval.</param>
    /// <param name="policy">What to do when the work is already scheduled; <see cref="ExistingPeriodicWorkPolicy.Keep"/> by default, so calling this at every start is safe. Use <see cref="ExistingPeriodicWorkPolicy.Update"/> to change the interval of a scheduled sync.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>What became of the unique work.</returns>
    /// <exception cref="InvalidOperationException">Unique work of that name exists but runs another worker than <see cref="SyncWorker"/>.</exception>
    public static async Task<UniqueWorkOutcome> ScheduleDataSyncAsync(
        this IWorkManager workManager,
        TimeSpan? interval = null,
        ExistingPeriodicWorkPolicy policy = ExistingPeriodicWorkPolicy.Keep,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(workManager);
        var request = new PeriodicWorkRequestBuilder(SyncWorker.Name, interval ?? DefaultInterval)
            .SetConstraints(new Constraints(NetworkType.Connected))
            .SetBackoffCriteria(BackoffPolicy.Exponential, DefaultBackoff)
            .AddTag(UniqueName)
            .Build();
        var outcome = await workManager.EnqueueUniquePeriodicWorkAsync(UniqueName, policy, request, cancellationToken).ConfigureAwait(false);
        if (outcome == UniqueWorkOutcome.KeptExisting)
        {
            // The work kept under the name must be the sync, or the app would believe its data syncs.
            var infos = await workManager.GetWorkInfosForUniqueWorkAsync(UniqueName, cancellationToken).ConfigureAwait(false);
            if (infos.FirstOrDefault(i => !i.State.IsFinished() && i.WorkerName != SyncWorker.Name) is { } other)
            {
                throw new InvalidOperationException(
                    $"The unique work '{UniqueName}' is reserved for Converge's background sync, but the scheduled one runs the worker " +
                    $"'{other.WorkerName}' (work {other.Id}). Cancel it (CancelUniqueWorkAsync(\"{UniqueName}\")) and give that work a name of its own.");
            }
        }

        return outcome;
    }
}
