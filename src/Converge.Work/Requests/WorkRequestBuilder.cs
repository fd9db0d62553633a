using System.Collections.Immutable;

namespace Converge.Work;

/// <summary>The settings common to one-time and periodic request builders.</summary>
/// <typeparam name="TBuilder">The concrete builder, for chaining.</typeparam>
/// <typeparam name="TRequest">The request it builds.</typeparam>
public abstract class WorkRequestBuilder<TBuilder, TRequest>
    where TBuilder : WorkRequestBuilder<TBuilder, TRequest>
    where TRequest : WorkRequest
{
    /// <summary>WorkManager's default base backoff delay: 30 seconds.</summary>
    public static readonly TimeSpan DefaultBackoffDelay = TimeSpan.FromSeconds(30);

    private readonly ImmutableHashSet<string>.Builder _tags = ImmutableHashSet.CreateBuilder<string>(StringComparer.Ordinal);
    private Guid _id = Guid.CreateVersion7();
    private WorkData _input = WorkData.Empty;
    private Constraints _constraints = Constraints.None;
    private TimeSpan _initialDelay = TimeSpan.Zero;
    private BackoffPolicy _backoffPolicy = BackoffPolicy.Exponential;
    private TimeSpan _backoffDelay = DefaultBackoffDelay;

    private protected WorkRequestBuilder(string workerName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(workerName);
        WorkerName = workerName;
        _tags.Add(workerName);
    }

    private protected string WorkerName { get; }

    private protected bool Expedited { get; set; }

    private protected OutOfQuotaPolicy OutOfQuota { get; set; }

    private protected string Merger { get; set; } = InputMerger.Overwriting.Name;

    private TBuilder This => (TBuilder)this;

    /// <summary>Sets the id of the next request built, instead of a new random one.</summary>
    /// <param name="id">The id.</param>
    /// <returns>This builder.</returns>
    public TBuilder SetId(Guid id)
    {
        if (id == Guid.Empty)
        {
            throw new ArgumentException("The work id cannot be empty.", nameof(id));
        }

        _id = id;
        return This;
    }

    /// <summary>Adds a tag to query and cancel the work by.</summary>
    /// <param name="tag">The tag.</param>
    /// <returns>This builder.</returns>
    public TBuilder AddTag(string tag)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tag);
        _tags.Add(tag);
        return This;
    }

    /// <summary>Sets the input data.</summary>
    /// <param name="input">The input, at most <see cref="WorkData.MaxDataBytes"/> bytes serialized.</param>
    /// <returns>This builder.</returns>
    public TBuilder SetInputData(WorkData input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _input = input;
        return This;
    }

    /// <summary>Sets the constraints.</summary>
    /// <param name="constraints">The constraints.</param>
    /// <returns>This builder.</returns>
    public TBuilder SetConstraints(Constraints constraints)
    {
        ArgumentNullException.ThrowIfNull(constraints);
        _constraints = constraints;
        return This;
    }

    /// <summary>Sets the delay from enqueue to the first run.</summary>
    /// <param name="delay">The delay; zero or more.</param>
    /// <returns>This builder.</returns>
    public TBuilder SetInitialDelay(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        _initialDelay = delay;
        return This;
    }

    /// <summary>Sets how retries back off.</summary>
    /// <param name="policy">Exponential or linear.</param>
    /// <param name="delay">The base delay; the scheduler clamps it to [10 s, 5 h] by default.</param>
    /// <returns>This builder.</returns>
    public TBuilder SetBackoffCriteria(BackoffPolicy policy, TimeSpan delay)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown backoff policy.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        _backoffPolicy = policy;
        _backoffDelay = delay;
        return This;
    }

    /// <summary>Validates the settings and builds the immutable request.</summary>
    /// <returns>The request.</returns>
    /// <exception cref="InvalidOperationException">The settings contradict each other (for example, expedited work with a delay).</exception>
    public TRequest Build()
    {
        if (Expedited)
        {
            if (_initialDelay > TimeSpan.Zero)
            {
                throw new InvalidOperationException("Expedited work cannot have an initial delay: it exists to run as soon as possible.");
            }

            if (_constraints.RequiresCharging || _constraints.RequiresBatteryNotLow || _constraints.RequiresDeviceIdle)
            {
                throw new InvalidOperationException(
                    "Expedited work supports only network and storage constraints, not charging, battery-not-low or device-idle.");
            }
        }

        var spec = new WorkRequestSpec(
            _id,
            WorkerName,
            _tags.ToImmutable(),
            _input,
            _constraints,
            _initialDelay,
            _backoffPolicy,
            _backoffDelay,
            Expedited,
            OutOfQuota,
            Merger,
            TimeSpan.Zero,
            TimeSpan.Zero);
        var request = BuildCore(spec);
        _id = Guid.CreateVersion7(); // as WorkManager, each Build() makes a new id; time-ordered, so the store's id index appends
        return request;
    }

    private protected abstract TRequest BuildCore(WorkRequestSpec spec);
}

/// <summary>Builds a <see cref="OneTimeWorkRequest"/>.</summary>
public sealed class OneTimeWorkRequestBuilder : WorkRequestBuilder<OneTimeWorkRequestBuilder, OneTimeWorkRequest>
{
    /// <summary>Starts a request for the worker registered under <paramref name="workerName"/>.</summary>
    /// <param name="workerName">The stable worker name.</param>
    public OneTimeWorkRequestBuilder(string workerName)
        : base(workerName)
    {
    }

    /// <summary>Starts a request for a worker class named with <see cref="WorkerNameAttribute"/>.</summary>
    /// <typeparam name="TWorker">The worker class.</typeparam>
    /// <returns>The builder.</returns>
    public static OneTimeWorkRequestBuilder For<TWorker>()
        where TWorker : IWorker => new(WorkRequest.WorkerNameOf(typeof(TWorker)));

    /// <summary>Marks the work expedited: it runs before ordinary work that is due.</summary>
    /// <param name="policy">What to do when the expedited quota is used up.</param>
    /// <returns>This builder.</returns>
    public OneTimeWorkRequestBuilder SetExpedited(OutOfQuotaPolicy policy)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown out-of-quota policy.");
        }

        Expedited = true;
        OutOfQuota = policy;
        return this;
    }

    /// <summary>Sets how prerequisite outputs merge into this work's input.</summary>
    /// <param name="merger"><see cref="InputMerger.Overwriting"/> (the default) or <see cref="InputMerger.ArrayCreating"/>.</param>
    /// <returns>This builder.</returns>
    public OneTimeWorkRequestBuilder SetInputMerger(InputMerger merger)
    {
        ArgumentNullException.ThrowIfNull(merger);
        Merger = merger.Name;
        return this;
    }

    private protected override OneTimeWorkRequest BuildCore(WorkRequestSpec spec) => new(spec);
}

/// <summary>Builds a <see cref="PeriodicWorkRequest"/>.</summary>
public sealed class PeriodicWorkRequestBuilder : WorkRequestBuilder<PeriodicWorkRequestBuilder, PeriodicWorkRequest>
{
    private readonly TimeSpan _interval;
    private readonly TimeSpan _flex;

    /// <summary>Starts a periodic request for the worker registered under <paramref name="workerName"/>.</summary>
    /// <param name="workerName">The stable worker name.</param>
    /// <param name="repeatInterval">The interval; raised to <see cref="WorkManagerOptions.MinimumPeriodicInterval"/> (15 minutes by default) at enqueue.</param>
    public PeriodicWorkRequestBuilder(string workerName, TimeSpan repeatInterval)
        : this(workerName, repeatInterval, repeatInterval)
    {
    }

    /// <summary>Starts a periodic request with a flex window: the first run falls in the last <paramref name="flexInterval"/> of the first period.</summary>
    /// <param name="workerName">The stable worker name.</param>
    /// <param name="repeatInterval">The interval.</param>
    /// <param name="flexInterval">The flex; clamped to [5 minutes, interval] at enqueue.</param>
    public PeriodicWorkRequestBuilder(string workerName, TimeSpan repeatInterval, TimeSpan flexInterval)
        : base(workerName)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(repeatInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(flexInterval, TimeSpan.Zero);
        _interval = repeatInterval;
        _flex = flexInterval;
    }

    /// <summary>Starts a periodic request for a worker class named with <see cref="WorkerNameAttribute"/>.</summary>
    /// <typeparam name="TWorker">The worker class.</typeparam>
    /// <param name="repeatInterval">The interval.</param>
    /// <returns>The builder.</returns>
    public static PeriodicWorkRequestBuilder For<TWorker>(TimeSpan repeatInterval)
        where TWorker : IWorker => new(WorkRequest.WorkerNameOf(typeof(TWorker)), repeatInterval);

    private protected override PeriodicWorkRequest BuildCore(WorkRequestSpec spec) => new(spec with { Interval = _interval, Flex = _flex });
}
