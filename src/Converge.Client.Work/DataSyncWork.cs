using Converge.Work;

namespace Converge.Client;

/// <summary>Schedules the background sync: the unique periodic work "dataSyncTask".</summary>
public static class DataSyncWork
{
    /// <summary>The unique name of the periodic sync work, also the stable name of its worker (<see cref="SyncWorker.Name"/>).</summary>
    public const string UniqueName = "dataSyncTask";

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
    public static Task<UniqueWorkOutcome> ScheduleDataSyncAsync(
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
        return workManager.EnqueueUniquePeriodicWorkAsync(UniqueName, policy, request, cancellationToken);
    }
}
