namespace Converge.Work;

/// <summary>The lifecycle state of a work item, as in WorkManager.</summary>
public enum WorkState
{
    /// <summary>Waiting for its time and constraints.</summary>
    Enqueued = 0,

    /// <summary>Running now.</summary>
    Running = 1,

    /// <summary>Finished with success. Final.</summary>
    Succeeded = 2,

    /// <summary>Finished with failure, or a prerequisite failed. Final.</summary>
    Failed = 3,

    /// <summary>Waiting for its prerequisites to succeed.</summary>
    Blocked = 4,

    /// <summary>Cancelled, or a prerequisite was cancelled. Final.</summary>
    Cancelled = 5,
}

/// <summary>Extension members for <see cref="WorkState"/>.</summary>
public static class WorkStateExtensions
{
    /// <summary>Gets whether the state is final: succeeded, failed or cancelled.</summary>
    /// <param name="state">The state.</param>
    /// <returns><see langword="true"/> for a final state.</returns>
    public static bool IsFinished(this WorkState state) => state is WorkState.Succeeded or WorkState.Failed or WorkState.Cancelled;
}

/// <summary>How the delay between retries grows.</summary>
public enum BackoffPolicy
{
    /// <summary>delay × 2^(attempts − 1).</summary>
    Exponential = 0,

    /// <summary>delay × attempts.</summary>
    Linear = 1,
}

/// <summary>What happens to expedited work when the expedited quota is used up.</summary>
public enum OutOfQuotaPolicy
{
    /// <summary>Run it as ordinary work.</summary>
    RunAsNonExpeditedWorkRequest = 0,

    /// <summary>Do not enqueue it.</summary>
    DropWorkRequest = 1,
}

/// <summary>What to do when one-time unique work is enqueued under a name that already has work.</summary>
public enum ExistingWorkPolicy
{
    /// <summary>Cancel and delete the existing work, then enqueue the new one.</summary>
    Replace = 0,

    /// <summary>Keep the existing work if it is enqueued or running and drop the new one; otherwise replace it.</summary>
    Keep = 1,

    /// <summary>Run the new work after the existing chain's leaves; if one of them failed or was cancelled, so is the new work.</summary>
    Append = 2,

    /// <summary>Like <see cref="Append"/>, but a failed or cancelled existing chain is replaced instead.</summary>
    AppendOrReplace = 3,
}

/// <summary>What to do when periodic unique work is enqueued under a name that already has work.</summary>
public enum ExistingPeriodicWorkPolicy
{
    /// <summary>Keep the existing work if it is enqueued or running and drop the new one.</summary>
    Keep = 0,

    /// <summary>Update the existing work's definition in place: same id, same schedule, attempt and period counts, generation + 1.</summary>
    Update = 1,

    /// <summary>Cancel the existing work and enqueue the new one with a fresh schedule.</summary>
    CancelAndReenqueue = 2,
}

/// <summary>Why a running work was stopped before it finished.</summary>
public enum StopReason
{
    /// <summary>Not stopped.</summary>
    NotStopped = 0,

    /// <summary>Stopped for an unknown reason.</summary>
    Unknown = 1,

    /// <summary>The work was cancelled.</summary>
    CancelledByApp = 2,

    /// <summary>The network constraint stopped holding.</summary>
    ConstraintConnectivity = 3,

    /// <summary>The device stopped charging.</summary>
    ConstraintCharging = 4,

    /// <summary>The battery became low.</summary>
    ConstraintBatteryNotLow = 5,

    /// <summary>Storage became low.</summary>
    ConstraintStorageNotLow = 6,

    /// <summary>The device stopped being idle.</summary>
    ConstraintDeviceIdle = 7,

    /// <summary>The work ran longer than the execution timeout.</summary>
    Timeout = 8,

    /// <summary>The scheduler shut down while the work ran.</summary>
    Shutdown = 9,

    /// <summary>The process ended while the work ran; found at the next start.</summary>
    ProcessDied = 10,
}
