using Converge.Work;

namespace DataSyncSample;

/// <summary>The Flutter plugin's style: one callback receives every task name that has no worker class of its own.</summary>
public static class CallbackDispatcher
{
    public const string CleanupTask = "cleanupTask";

    /// <summary>Returns true for success, false to retry with backoff; an exception fails the task.</summary>
    public static Task<bool> ExecuteTask(string task, WorkData inputData)
    {
        switch (task)
        {
            case CleanupTask:
                Console.WriteLine($"Cleaning up entries older than {inputData.GetInt64("days", 30)} days");
                return Task.FromResult(true);
            default:
                throw new InvalidOperationException($"Unknown task '{task}'.");
        }
    }
}
