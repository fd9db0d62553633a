using System.Collections.Immutable;
using System.Text.Json;

namespace Converge.Work.Storage;

/// <summary>A work as stored: a mutable row the engine transitions and writes back.</summary>
internal sealed class WorkRow
{
    public long Seq { get; set; }

    public required Guid Id { get; init; }

    public required string WorkerName { get; set; }

    public WorkState State { get; set; }

    public required string InputJson { get; set; }

    public string OutputJson { get; set; } = "{}";

    public string? ProgressJson { get; set; }

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

    public string? UniqueName { get; set; }

    public required string InputMerger { get; set; }

    public required Constraints Constraints { get; set; }

    public TimeSpan InitialDelay { get; set; }

    public TimeSpan Interval { get; set; }

    public TimeSpan Flex { get; set; }

    public BackoffPolicy BackoffPolicy { get; set; }

    public TimeSpan BackoffDelay { get; set; }

    public bool Expedited { get; set; }

    public OutOfQuotaPolicy OutOfQuotaPolicy { get; set; }

    public long LastEnqueueTime { get; set; }

    public int RunAttemptCount { get; set; }

    public int PeriodCount { get; set; }

    public int Generation { get; set; }

    public StopReason StopReason { get; set; }

    public string? FailureReason { get; set; }

    public long NextRunAt { get; set; }

    public bool OverrideConstraints { get; set; }

    public bool HasPrerequisites { get; set; }

    /// <summary>Gets or sets whether any work depends on this one; when not, finishing it needs no dependency lookup.</summary>
    public bool HasDependents { get; set; }

    public long CreatedAt { get; set; }

    /// <summary>Gets or sets whether the row is RUNNING on another node of a shared store: this node must not finish or stop it.</summary>
    public bool RunningElsewhere { get; set; }

    /// <summary>Gets or sets whether the row was read as RUNNING on this node of a shared store: written back only while it still is.</summary>
    public bool ReadAsOwnRun { get; set; }

    public bool IsPeriodic => Interval > TimeSpan.Zero;

    /// <summary>Gets the constraints the work requires, as the bits a store keeps in its <c>requires</c> column.</summary>
    public ConstraintBits Requires => Constraints.Required();

    /// <summary>Reads a row from the columns every store selects in this order (seq, id, worker_name, … has_dependents).</summary>
    /// <remarks>Flags are read with <see cref="System.Data.Common.DbDataReader.GetBoolean"/>: SQLite's 0/1 integers and PostgreSQL's booleans alike.</remarks>
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

    public void ComputeNextRunAt() => NextRunAt = WorkSchedule.NextRunTime(
        IsPeriodic, LastEnqueueTime, RunAttemptCount, PeriodCount, BackoffPolicy, BackoffDelay, InitialDelay, Interval, Flex);

    public static WorkRow FromSpec(WorkRequestSpec spec, WorkManagerOptions options, long now)
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
    public void ApplyDefinition(WorkRequestSpec spec, WorkManagerOptions options)
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

    public WorkInfo ToInfo() => new()
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

    public static string TagsToJson(ImmutableHashSet<string> tags) => JsonSerializer.Serialize(tags.Order(StringComparer.Ordinal).ToArray(), WorkJsonContext.Default.StringArray);

    /// <summary>Reads stored tags; sets repeat across works (most have only their worker's name), so parses are cached.</summary>
    public static ImmutableHashSet<string> TagsFromJson(string json)
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
