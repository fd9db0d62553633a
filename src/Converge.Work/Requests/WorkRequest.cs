using System.Collections.Immutable;
using System.Reflection;

namespace Converge.Work;

/// <summary>A request to run a worker: what to run, with which input, when, and under which conditions. Immutable.</summary>
public abstract class WorkRequest
{
    private protected WorkRequest(WorkRequestSpec spec) => Spec = spec;

    /// <summary>Gets the id the work will have once enqueued.</summary>
    public Guid Id => Spec.Id;

    /// <summary>Gets the stable name of the worker that runs it.</summary>
    public string WorkerName => Spec.WorkerName;

    /// <summary>Gets the tags, including the worker's name.</summary>
    public IReadOnlySet<string> Tags => Spec.Tags;

    /// <summary>Gets the input data.</summary>
    public WorkData InputData => Spec.Input;

    /// <summary>Gets the constraints.</summary>
    public Constraints Constraints => Spec.Constraints;

    /// <summary>Gets the delay from enqueue to the first run.</summary>
    public TimeSpan InitialDelay => Spec.InitialDelay;

    /// <summary>Gets the backoff policy for retries.</summary>
    public BackoffPolicy BackoffPolicy => Spec.BackoffPolicy;

    /// <summary>Gets the base backoff delay, as requested; the scheduler clamps it to its limits.</summary>
    public TimeSpan BackoffDelay => Spec.BackoffDelay;

    /// <summary>Gets whether the work is expedited: it runs ahead of ordinary work.</summary>
    public bool IsExpedited => Spec.Expedited;

    /// <summary>Gets what happens when expedited work is over quota.</summary>
    public OutOfQuotaPolicy OutOfQuotaPolicy => Spec.OutOfQuotaPolicy;

    internal WorkRequestSpec Spec { get; }

    internal static string WorkerNameOf(Type workerType)
    {
        var attribute = workerType.GetCustomAttribute<WorkerNameAttribute>();
        return attribute?.Name ?? throw new ArgumentException(
            $"{workerType.Name} has no [WorkerName] attribute. Work is persisted by a stable worker name, never by type name; " +
            "add [WorkerName(\"...\")] to the class or pass the name explicitly.",
            nameof(workerType));
    }
}

/// <summary>Names a worker class with the stable name its work is stored under.</summary>
/// <param name="name">The stable name; keep it when the class is renamed or moved.</param>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class WorkerNameAttribute(string name) : Attribute
{
    /// <summary>Gets the stable name.</summary>
    public string Name { get; } = name;
}

/// <summary>A request to run a worker once (retries aside).</summary>
public sealed class OneTimeWorkRequest : WorkRequest
{
    internal OneTimeWorkRequest(WorkRequestSpec spec)
        : base(spec)
    {
    }

    /// <summary>Gets the merger that combines prerequisite outputs into this work's input.</summary>
    public InputMerger InputMerger => InputMerger.FromName(Spec.InputMerger);

    /// <summary>Builds a request with default settings for the worker registered under <paramref name="workerName"/>.</summary>
    /// <param name="workerName">The stable worker name.</param>
    /// <returns>The request.</returns>
    public static OneTimeWorkRequest From(string workerName) => new OneTimeWorkRequestBuilder(workerName).Build();

    /// <summary>Builds a request with default settings for a worker class named with <see cref="WorkerNameAttribute"/>.</summary>
    /// <typeparam name="TWorker">The worker class.</typeparam>
    /// <returns>The request.</returns>
    public static OneTimeWorkRequest From<TWorker>()
        where TWorker : IWorker => new OneTimeWorkRequestBuilder(WorkerNameOf(typeof(TWorker))).Build();
}

/// <summary>A request to run a worker every interval until cancelled.</summary>
public sealed class PeriodicWorkRequest : WorkRequest
{
    internal PeriodicWorkRequest(WorkRequestSpec spec)
        : base(spec)
    {
    }

    /// <summary>Gets the repeat interval, as requested; the scheduler raises it to its minimum.</summary>
    public TimeSpan RepeatInterval => Spec.Interval;

    /// <summary>Gets the flex interval, as requested: the first run falls in the last flex of the first period.</summary>
    public TimeSpan FlexInterval => Spec.Flex;
}

internal sealed record WorkRequestSpec(
    Guid Id,
    string WorkerName,
    ImmutableHashSet<string> Tags,
    WorkData Input,
    Constraints Constraints,
    TimeSpan InitialDelay,
    BackoffPolicy BackoffPolicy,
    TimeSpan BackoffDelay,
    bool Expedited,
    OutOfQuotaPolicy OutOfQuotaPolicy,
    string InputMerger,
    TimeSpan Interval,
    TimeSpan Flex)
{
    public bool IsPeriodic => Interval > TimeSpan.Zero;
}
