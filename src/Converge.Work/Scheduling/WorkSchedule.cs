namespace Converge.Work;

/// <summary>WorkManager's schedule arithmetic, as pure functions over milliseconds since the Unix epoch.</summary>
internal static class WorkSchedule
{
    /// <summary>WorkManager's ceiling on any backoff delay: 5 hours.</summary>
    public static readonly TimeSpan MaximumBackoffDelay = TimeSpan.FromHours(5);

    public static TimeSpan ClampInterval(TimeSpan interval, TimeSpan minimum) => interval < minimum ? minimum : interval;

    /// <summary>Clamps flex to [minimum flex, interval]; when the interval itself is below the minimum flex, to the interval.</summary>
    public static TimeSpan ClampFlex(TimeSpan flex, TimeSpan interval, TimeSpan minimumFlex)
    {
        var floor = minimumFlex < interval ? minimumFlex : interval;
        if (flex < floor)
        {
            return floor;
        }

        return flex > interval ? interval : flex;
    }

    public static TimeSpan ClampBackoff(TimeSpan delay, TimeSpan minimum)
    {
        if (delay < minimum)
        {
            return minimum;
        }

        return delay > MaximumBackoffDelay ? MaximumBackoffDelay : delay;
    }

    /// <summary>The delay before retry number <paramref name="runAttemptCount"/>: linear d×n, exponential d×2^(n−1), capped at 5 hours.</summary>
    public static TimeSpan BackoffDelay(BackoffPolicy policy, TimeSpan delay, int runAttemptCount)
    {
        if (runAttemptCount <= 0)
        {
            return TimeSpan.Zero;
        }

        var ms = policy == BackoffPolicy.Linear
            ? delay.TotalMilliseconds * runAttemptCount
            : Math.ScaleB(delay.TotalMilliseconds, runAttemptCount - 1);
        return ms >= MaximumBackoffDelay.TotalMilliseconds || double.IsInfinity(ms) ? MaximumBackoffDelay : TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>When an enqueued work is next eligible to run, as WorkManager's <c>WorkSpec.calculateNextRunTime</c>.</summary>
    /// <remarks>
    /// Backed-off work (attempts so far &gt; 0) runs at last enqueue + backoff. Periodic work runs at last enqueue + initial
    /// delay (+ interval − flex when a flex window is set) in its first period, and at end of last run + interval after that.
    /// One-time work runs at enqueue + initial delay.
    /// </remarks>
    public static long NextRunTime(
        bool isPeriodic,
        long lastEnqueueTime,
        int runAttemptCount,
        int periodCount,
        BackoffPolicy backoffPolicy,
        TimeSpan backoffDelay,
        TimeSpan initialDelay,
        TimeSpan interval,
        TimeSpan flex)
    {
        if (runAttemptCount > 0)
        {
            return lastEnqueueTime + (long)BackoffDelay(backoffPolicy, backoffDelay, runAttemptCount).TotalMilliseconds;
        }

        if (!isPeriodic)
        {
            return lastEnqueueTime + (long)initialDelay.TotalMilliseconds;
        }

        if (periodCount == 0)
        {
            var first = lastEnqueueTime + (long)initialDelay.TotalMilliseconds;
            return flex != interval ? first + (long)(interval - flex).TotalMilliseconds : first;
        }

        return lastEnqueueTime + (long)interval.TotalMilliseconds;
    }
}
