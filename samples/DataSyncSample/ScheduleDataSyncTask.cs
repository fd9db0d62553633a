using Converge.Work;

namespace DataSyncSample;

public static class ScheduleDataSyncTask
{
    /// <summary>Registers the sync as unique periodic work: every 15 minutes, network required, exponential backoff.</summary>
    /// <remarks>Keep leaves an already scheduled sync alone, so calling this at every app start is safe.</remarks>
    public static Task<UniqueWorkOutcome> RunAsync(IWorkManager workManager, CancellationToken cancellationToken = default)
    {
        var request = new PeriodicWorkRequestBuilder(DataSyncTask.Name, TimeSpan.FromMinutes(15))
            .SetConstraints(new Constraints(NetworkType.Connected))
            .SetBackoffCriteria(BackoffPolicy.Exponential, TimeSpan.FromSeconds(30))
            .Build();
        return workManager.EnqueueUniquePeriodicWorkAsync(DataSyncTask.Name, ExistingPeriodicWorkPolicy.Keep, request, cancellationToken);
    }
}
