using Converge.Work;
using Microsoft.Extensions.Logging;

namespace DataSyncSample;

/// <summary>The background sync: push what changed locally, pull what changed remotely.</summary>
/// <remarks>Stored under its stable name, so renaming this class never strands scheduled work.</remarks>
[WorkerName(DataSyncTask.Name)]
public sealed partial class DataSyncTask(ILogger<DataSyncTask> logger) : IWorker
{
    public const string Name = "dataSyncTask";

    public async Task<WorkResult> DoWorkAsync(WorkContext context)
    {
        LogSyncing(logger, context.RunAttemptCount);
        try
        {
            // The sync engine plugs in here (push the outbox, pull changes); a short wait stands in for it.
            await Task.Delay(TimeSpan.FromMilliseconds(100), context.StopToken);
            return WorkResult.Success(WorkData.From(("syncedAt", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())));
        }
        catch (HttpRequestException)
        {
            return WorkResult.Retry(); // the server was unreachable: back off exponentially and try again
        }
    }

    [LoggerMessage(1, LogLevel.Information, "Syncing (attempt {Attempt})")]
    private static partial void LogSyncing(ILogger logger, int attempt);
}
