using Microsoft.Extensions.Logging;

namespace Converge.Work;

internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "Work scheduler started on {Path} running up to {MaxConcurrency} work items at once; {Recovered} interrupted work items re-enqueued, {Pruned} old finished work items pruned")]
    public static partial void SchedulerStarted(ILogger logger, string path, int maxConcurrency, int recovered, int pruned);

    [LoggerMessage(1001, LogLevel.Information, "Work store {Path} opened for enqueue only")]
    public static partial void EnqueueOnlyOpened(ILogger logger, string path);

    [LoggerMessage(1002, LogLevel.Information, "Work scheduler stopped; {Interrupted} running work items re-enqueued")]
    public static partial void SchedulerStopped(ILogger logger, int interrupted);

    [LoggerMessage(1010, LogLevel.Debug, "Work {Id} ({Worker}) started, attempt {Attempt}")]
    public static partial void WorkStartedDebug(ILogger logger, Guid id, string worker, int attempt);

    [LoggerMessage(1011, LogLevel.Information, "Work {Id} ({Worker}) started, attempt {Attempt}")]
    public static partial void WorkStartedInfo(ILogger logger, Guid id, string worker, int attempt);

    [LoggerMessage(1012, LogLevel.Debug, "Work {Id} ({Worker}) finished: {Result}, now {State}")]
    public static partial void WorkFinishedDebug(ILogger logger, Guid id, string worker, string result, WorkState state);

    [LoggerMessage(1013, LogLevel.Information, "Work {Id} ({Worker}) finished: {Result}, now {State}")]
    public static partial void WorkFinishedInfo(ILogger logger, Guid id, string worker, string result, WorkState state);

    [LoggerMessage(1014, LogLevel.Warning, "Work {Id} ({Worker}) threw; counted as failure")]
    public static partial void WorkThrew(ILogger logger, Exception exception, Guid id, string worker);

    [LoggerMessage(1015, LogLevel.Information, "Work {Id} ({Worker}) stopped: {Reason}; enqueued again")]
    public static partial void WorkStopped(ILogger logger, Guid id, string worker, StopReason reason);

    [LoggerMessage(1016, LogLevel.Error, "Work {Id} failed without running: {Reason}")]
    public static partial void WorkFailedToStart(ILogger logger, Guid id, string reason);

    [LoggerMessage(1020, LogLevel.Warning, "Periodic work {Id}: interval {Requested} raised to the minimum {Minimum}")]
    public static partial void IntervalClamped(ILogger logger, Guid id, TimeSpan requested, TimeSpan minimum);

    [LoggerMessage(1030, LogLevel.Error, "Work store transaction failed; the batch's callers get the error")]
    public static partial void BatchFailed(ILogger logger, Exception exception);

    [LoggerMessage(1031, LogLevel.Critical, "Work scheduler loop crashed")]
    public static partial void LoopCrashed(ILogger logger, Exception exception);

    [LoggerMessage(1032, LogLevel.Debug, "Device state changed: {State}")]
    public static partial void DeviceStateChanged(ILogger logger, DeviceState state);
}
