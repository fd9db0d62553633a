namespace Converge.Work;

/// <summary>A snapshot of a work item: its state, schedule, attempts, output and progress.</summary>
public sealed record WorkInfo
{
    /// <summary>Gets the id.</summary>
    public required Guid Id { get; init; }

    /// <summary>Gets the stable name of its worker.</summary>
    public required string WorkerName { get; init; }

    /// <summary>Gets the state.</summary>
    public required WorkState State { get; init; }

    /// <summary>Gets the tags, including the worker's name.</summary>
    public required IReadOnlySet<string> Tags { get; init; }

    /// <summary>Gets the unique work name it was enqueued under, if any.</summary>
    public string? UniqueName { get; init; }

    /// <summary>Gets the output of the last finished run (empty until then).</summary>
    public required WorkData OutputData { get; init; }

    /// <summary>Gets the progress the running worker last reported (empty when not running).</summary>
    public required WorkData Progress { get; init; }

    /// <summary>Gets how many times the work has been started in the current period (the count a retry backs off by).</summary>
    public required int RunAttemptCount { get; init; }

    /// <summary>Gets the generation of the definition; it grows with each update.</summary>
    public required int Generation { get; init; }

    /// <summary>Gets how many periods a periodic work has completed.</summary>
    public required int PeriodCount { get; init; }

    /// <summary>Gets when an enqueued work is next eligible to run (constraints permitting), or <see langword="null"/> when not enqueued.</summary>
    public DateTimeOffset? NextScheduleTime { get; init; }

    /// <summary>Gets the initial delay.</summary>
    public required TimeSpan InitialDelay { get; init; }

    /// <summary>Gets the constraints.</summary>
    public required Constraints Constraints { get; init; }

    /// <summary>Gets the repeat and flex intervals in force (after clamping), or <see langword="null"/> for one-time work.</summary>
    public PeriodicityInfo? Periodicity { get; init; }

    /// <summary>Gets why the last run was stopped, or <see cref="StopReason.NotStopped"/>.</summary>
    public required StopReason StopReason { get; init; }

    /// <summary>Gets why the scheduler failed the work (an exception, an unknown worker, a failed prerequisite), or <see langword="null"/>.</summary>
    public string? FailureReason { get; init; }

    /// <summary>Gets whether the work is expedited.</summary>
    public required bool IsExpedited { get; init; }
}

/// <summary>The repeat and flex intervals of a periodic work.</summary>
/// <param name="RepeatInterval">The interval between runs.</param>
/// <param name="FlexInterval">The flex of the first period.</param>
public sealed record PeriodicityInfo(TimeSpan RepeatInterval, TimeSpan FlexInterval);

/// <summary>Selects work by ids, unique names, tags and states: any of each list, all of the lists given.</summary>
public sealed record WorkQuery
{
    /// <summary>Gets the ids to match; empty matches any.</summary>
    public IReadOnlyList<Guid> Ids { get; init; } = [];

    /// <summary>Gets the unique names to match; empty matches any.</summary>
    public IReadOnlyList<string> UniqueNames { get; init; } = [];

    /// <summary>Gets the tags to match; empty matches any.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>Gets the states to match; empty matches any.</summary>
    public IReadOnlyList<WorkState> States { get; init; } = [];

    /// <summary>Gets a query for every work.</summary>
    public static WorkQuery All { get; } = new();

    /// <summary>Creates a query for ids.</summary>
    /// <param name="ids">The ids.</param>
    /// <returns>The query.</returns>
    public static WorkQuery ForIds(params Guid[] ids) => new() { Ids = ids };

    /// <summary>Creates a query for unique names.</summary>
    /// <param name="names">The names.</param>
    /// <returns>The query.</returns>
    public static WorkQuery ForUniqueNames(params string[] names) => new() { UniqueNames = names };

    /// <summary>Creates a query for tags.</summary>
    /// <param name="tags">The tags.</param>
    /// <returns>The query.</returns>
    public static WorkQuery ForTags(params string[] tags) => new() { Tags = tags };

    /// <summary>Creates a query for states.</summary>
    /// <param name="states">The states.</param>
    /// <returns>The query.</returns>
    public static WorkQuery ForStates(params WorkState[] states) => new() { States = states };
}

/// <summary>What enqueueing unique work did.</summary>
public enum UniqueWorkOutcome
{
    /// <summary>The new work was enqueued; no unfinished work had the name.</summary>
    Enqueued = 0,

    /// <summary>Existing work was kept and the new work dropped.</summary>
    KeptExisting = 1,

    /// <summary>Existing work was cancelled and replaced by the new work.</summary>
    Replaced = 2,

    /// <summary>The new work was appended after the existing chain.</summary>
    Appended = 3,

    /// <summary>The existing periodic work was updated in place, effective now.</summary>
    Updated = 4,

    /// <summary>The existing periodic work was updated in place; it was running, so the update applies from its next run.</summary>
    UpdatedForNextRun = 5,
}
