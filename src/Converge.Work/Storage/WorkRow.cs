using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace Converge.Work.Storage;

/// <summary>A work as stored: a mutable row the scheduler transitions and a store writes back, every column a property.</summary>
/// <remarks>
/// Times are Unix milliseconds. A store keeps every property (tags as <see cref="TagsJson"/>, constraints as
/// <see cref="Requires"/>) and reads rows back with <see cref="Read"/>, which expects the columns in the order the
/// built-in stores select them.
/// </remarks>
[Experimental(WorkStoreContract.DiagnosticId)]
public sealed class WorkRow
{
    /// <summary>Gets or sets the store's sequence number of the row: insertion order, and the order of queries. Set by <see cref="IWorkStore.InsertAsync"/>.</summary>
    public long Seq { get; set; }

    /// <summary>Gets the work id.</summary>
    public required Guid Id { get; init; }

    /// <summary>Gets or sets the stable name of the worker that runs the work.</summary>
    public required string WorkerName { get; set; }

    /// <summary>Gets or sets the work's state.</summary>
    public WorkState State { get; set; }

    /// <summary>Gets or sets the input data, as JSON.</summary>
    public required string InputJson { get; set; }

    /// <summary>Gets or sets the output of the last run, as JSON.</summary>
    public string OutputJson { get; set; } = "{}";

    /// <summary>Gets or sets the progress of the current run, as JSON, or <see langword="null"/>.</summary>
    public string? ProgressJson { get; set; }

    /// <summary>Gets or sets the tags, the worker's name among them.</summary>
    public required ImmutableHashSet<string> Tags
    {
        get;
        set
        {
            if (!ReferenceEquals(field, value))
            {
                field = value;
                TagsJson = TagsToJson(value);
            }
        }
    }

    /// <summary>Gets the stored form of <see cref="Tags"/>, computed once per change rather than at every write.</summary>
    public string TagsJson { get; private set; } = "[]";

    /// <summary>Gets or sets the unique name the work was enqueued under, if any.</summary>
    public string? UniqueName { get; set; }

    /// <summary>Gets or sets the name of the input merger for the prerequisites' outputs.</summary>
    public required string InputMerger { get; set; }

    /// <summary>Gets or sets the constraints the work requires.</summary>
    public required Constraints Constraints { get; set; }

    /// <summary>Gets or sets the delay before the first run.</summary>
    public TimeSpan InitialDelay { get; set; }

    /// <summary>Gets or sets the repeat interval of periodic work; zero for one-time work.</summary>
    public TimeSpan Interval { get; set; }

    /// <summary>Gets or sets the flex interval of periodic work.</summary>
    public TimeSpan Flex { get; set; }

    /// <summary>Gets or sets how retries back off.</summary>
    public BackoffPolicy BackoffPolicy { get; set; }

    /// <summary>Gets or sets the base backoff delay.</summary>
    public TimeSpan BackoffDelay { get; set; }

    /// <summary>Gets or sets whether the work is expedited: claimed before other due work.</summary>
    public bool Expedited { get; set; }

    /// <summary>Gets or sets what an expedited work does without quota.</summary>
    public OutOfQuotaPolicy OutOfQuotaPolicy { get; set; }

    /// <summary>Gets or sets when the work was last enqueued: the start of its backoff and of its period.</summary>
    public long LastEnqueueTime { get; set; }

    /// <summary>Gets or sets how many runs started in the current period.</summary>
    public int RunAttemptCount { get; set; }

    /// <summary>Gets or sets how many periods of periodic work have ended.</summary>
    public int PeriodCount { get; set; }

    /// <summary>Gets or sets how many times the work's definition was updated.</summary>
    public int Generation { get; set; }

    /// <summary>Gets or sets why the last run stopped.</summary>
    public StopReason StopReason { get; set; }

    /// <summary>Gets or sets why the work failed, if it did.</summary>
    public string? FailureReason { get; set; }

    /// <summary>Gets or sets when the work is next due.</summary>
    public long NextRunAt { get; set; }

    /// <summary>Gets or sets whether the work's constraints count as met until its next run finishes (the test driver's override).</summary>
    public bool OverrideConstraints { get; set; }

    /// <summary>Gets or sets whether the work item waits for other work items. Set by <see cref="IWorkStore.InsertAsync"/>.</summary>
    public bool HasPrerequisites { get; set; }

    /// <summary>Gets or sets whether any work depends on this one; when not, finishing it needs no dependency lookup.</summary>
    public bool HasDependents { get; set; }

    /// <summary>Gets or sets when the work was enqueued first.</summary>
    public long CreatedAt { get; set; }

    /// <summary>Gets or sets whether the row is RUNNING on another node of a shared store: this node must not finish or stop it.</summary>
    public bool RunningElsewhere { get; set; }

    /// <summary>Gets or sets whether the row was read as RUNNING on this node of a shared store: written back only while it still is.</summary>
    public bool ReadAsOwnRun { get; set; }

    /// <summary>Gets whether the work is periodic.</summary>
    public bool IsPeriodic => Interval > TimeSpan.Zero;

    /// <summary>Gets the constraints the work requires, as the bits a store keeps in its <c>requires</c> column.</summary>
    public ConstraintBits Requires => Constraints.Required();

    /// <summary>Reads a row from the columns every store selects in this order (seq, id, worker_name, … has_dependents).</summary>
    /// <param name="r">The reader, on a row.</param>
    /// <returns>The row.</returns>
    /// <remarks>
    /// The columns: seq, id, worker_name, state, input, output, progress, tags, unique_name, input_merger, requires,
    /// initial_delay_ms, interval_ms, flex_ms, backoff_policy, backoff_delay_ms, expedited, out_of_quota,
    /// last_enqueue_time, run_attempt_count, period_count, generation, stop_reason, failure_reason, next_run_at,
    /// override_constraints, has_prerequisites, created_at, has_dependents. Flags are read with
    /// <see cref="System.Data.Common.DbDataReader.GetBoolean"/>: SQLite's 0/1 integers and PostgreSQL's booleans alike.
    /// </remarks>
    public static WorkRow Read(System.Data.Common.DbDataReader r) => new()
    {
        Seq = r.GetInt64(0),
        Id = r.GetGuid(1),
        WorkerName = r.GetString(2),
        State = (WorkState)r.GetInt32(3),
        InputJson = r.GetString(4),
        OutputJson = r.GetString(5),
        ProgressJson = r.IsDBNull(6) ? null : r.GetString(6),
        Tags = TagsFromJson(r.GetString(7)),
        UniqueName = r.IsDBNull(8) ? null : r.GetString(8),
        InputMerger = r.GetString(9),
        Constraints = ((ConstraintBits)r.GetInt64(10)).ToConstraints(),
        InitialDelay = TimeSpan.FromMilliseconds(r.GetInt64(11)),
        Interval = TimeSpan.FromMilliseconds(r.GetInt64(12)),
        Flex = TimeSpan.FromMilliseconds(r.GetInt64(13)),
        BackoffPolicy = (BackoffPolicy)r.GetInt32(14),
        BackoffDelay = TimeSpan.FromMilliseconds(r.GetInt64(15)),
        Expedited = r.GetBoolean(16),
        OutOfQuotaPolicy = (OutOfQuotaPolicy)r.GetInt32(17),
        LastEnqueueTime = r.GetInt64(18),
        RunAttemptCount = r.GetInt32(19),
        PeriodCount = r.GetInt32(20),
        Generation = r.GetInt32(21),
        StopReason = (StopReason)r.GetInt32(22),
        FailureReason = r.IsDBNull(23) ? null : r.GetString(23),
        NextRunAt = r.GetInt64(24),
        OverrideConstraints = r.GetBoolean(25),
        HasPrerequisites = r.GetBoolean(26),
        CreatedAt = r.GetInt64(27),
        HasDependents = r.GetBoolean(28),
    };

    internal void ComputeNextRunAt() => NextRunAt = WorkSchedule.NextRunTime(
        IsPeriodic, LastEnqueueTime, RunAttemptCount, PeriodCount, BackoffPolicy, BackoffDelay, InitialDelay, Interval, Flex);

    internal static WorkRow FromSpec(WorkRequestSpec spec, WorkManagerOptions options, long now)
    {
        var row = new WorkRow
        {
            Id = spec.Id,
            WorkerName = spec.WorkerName,
            State = WorkState.Enqueued,
            InputJson = spec.Input.ToJson(),
            Tags = spec.Tags,
            InputMerger = spec.InputMerger,
            Constraints = spec.Constraints,
            CreatedAt = now,
            LastEnqueueTime = now,
        };
        row.ApplyDefinition(spec, options);
        return row;
    }

    /// <summary>Copies the definition (not the schedule state) of a request, clamped to the scheduler's limits.</summary>
    internal void ApplyDefinition(WorkRequestSpec spec, WorkManagerOptions options)
    {
        WorkerName = spec.WorkerName;
        InputJson = spec.Input.ToJson();
        Tags = spec.Tags;
        InputMerger = spec.InputMerger;
        Constraints = spec.Constraints;
        InitialDelay = spec.InitialDelay;
        BackoffPolicy = spec.BackoffPolicy;
        BackoffDelay = WorkSchedule.ClampBackoff(spec.BackoffDelay, options.MinimumBackoffDelay);
        Expedited = spec.Expedited;
        OutOfQuotaPolicy = spec.OutOfQuotaPolicy;
        if (spec.IsPeriodic)
        {
            Interval = WorkSchedule.ClampInterval(spec.Interval, options.MinimumPeriodicInterval);
            Flex = WorkSchedule.ClampFlex(spec.Flex, Interval, options.MinimumPeriodicFlex);
        }
        else
        {
            Interval = TimeSpan.Zero;
            Flex = TimeSpan.Zero;
        }
    }

    internal WorkInfo ToInfo() => new()
    {
        Id = Id,
        WorkerName = WorkerName,
        State = State,
        Tags = Tags,
        UniqueName = UniqueName,
        OutputData = WorkData.FromJson(OutputJson),
        Progress = ProgressJson is null ? WorkData.Empty : WorkData.FromJson(ProgressJson),
        RunAttemptCount = RunAttemptCount,
        Generation = Generation,
        PeriodCount = PeriodCount,
        NextScheduleTime = State == WorkState.Enqueued ? DateTimeOffset.FromUnixTimeMilliseconds(NextRunAt) : null,
        InitialDelay = InitialDelay,
        Constraints = Constraints,
        Periodicity = IsPeriodic ? new PeriodicityInfo(Interval, Flex) : null,
        StopReason = StopReason,
        FailureReason = FailureReason,
        IsExpedited = Expedited,
    };

    internal static string TagsToJson(ImmutableHashSet<string> tags) => JsonSerializer.Serialize(tags.Order(StringComparer.Ordinal).ToArray(), WorkJsonContext.Default.StringArray);

    /// <summary>Reads stored tags; sets repeat across work items (most have only their worker's name), so parses are cached.</summary>
    internal static ImmutableHashSet<string> TagsFromJson(string json)
    {
        if (s_tagSets.TryGetValue(json, out var tags))
        {
            return tags;
        }

        tags = ImmutableHashSet.Create(StringComparer.Ordinal, JsonSerializer.Deserialize(json, WorkJsonContext.Default.StringArray) ?? []);
        if (s_tagSets.Count < 4096)
        {
            s_tagSets.TryAdd(json, tags);
        }

        return tags;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, ImmutableHashSet<string>> s_tagSets = new(StringComparer.Ordinal);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string[]))]
internal sealed partial class WorkJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
