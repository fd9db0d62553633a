using System.Diagnostics.CodeAnalysis;
using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>How acknowledged writes to the work store survive failures.</summary>
public enum WorkDurability
{
    /// <summary>Survives a crash or kill of the process (SQLite WAL, synchronous NORMAL). The default.</summary>
    Process = 0,

    /// <summary>Also survives power loss: every acknowledged write is synced to disk (synchronous FULL). Slower.</summary>
    PowerLoss = 1,
}

/// <summary>Options of the work scheduler.</summary>
public sealed class WorkManagerOptions
{
    /// <summary>Gets or sets the path of the SQLite database that holds the work.</summary>
    /// <value>Required, unless a store package sets <see cref="StoreProvider"/>.</value>
    public string DatabasePath { get; set; } = "";

    /// <summary>Gets or sets how many work items run at once.</summary>
    /// <value>The default is the processor count; from 1 to 10,000.</value>
    public int MaxConcurrency { get; set; } = Environment.ProcessorCount;

    /// <summary>Gets or sets how long a run may take before it is stopped with <see cref="StopReason.Timeout"/> and enqueued again.</summary>
    /// <value>The default is 10 minutes, as in WorkManager. <see cref="Timeout.InfiniteTimeSpan"/> turns the limit off; otherwise at most 49 days.</value>
    public TimeSpan ExecutionTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets how long finished work (succeeded, failed, cancelled) is kept before it is pruned at start.</summary>
    /// <value>The default is 1 day, as WorkManager's default for keeping results.</value>
    public TimeSpan KeepFinishedWorkFor { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Gets or sets the smallest repeat interval of periodic work; shorter intervals are raised to it.</summary>
    /// <value>The default is 15 minutes, as in WorkManager. Lower it for desktop or server apps that need it.</value>
    public TimeSpan MinimumPeriodicInterval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Gets or sets the smallest flex interval of periodic work.</summary>
    /// <value>The default is 5 minutes, as in WorkManager.</value>
    public TimeSpan MinimumPeriodicFlex { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets the smallest base backoff delay; shorter delays are raised to it. The largest is 5 hours.</summary>
    /// <value>The default is 10 seconds, as in WorkManager.</value>
    public TimeSpan MinimumBackoffDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how acknowledged enqueues and results survive failures.</summary>
    /// <value>The default is <see cref="WorkDurability.Process"/>.</value>
    public WorkDurability Durability { get; set; } = WorkDurability.Process;

    /// <summary>Gets or sets whether every start and finish of a work item is logged at Information level (the plugin's isInDebugMode).</summary>
    /// <value>The default is <see langword="false"/>: starts and finishes log at Debug.</value>
    public bool DebugMode { get; set; }

    /// <summary>Gets or sets whether this process only enqueues, queries and cancels, leaving execution to the process that runs the scheduler.</summary>
    /// <value>The default is <see langword="false"/>.</value>
    public bool EnqueueOnly { get; set; }

    /// <summary>Gets or sets whether an enqueue-only instance may wake the scheduler through its socket; tests turn it off to exercise the file.</summary>
    internal bool WakeBySocket { get; set; } = true;

    /// <summary>Gets or sets what opens a store other than the SQLite file at <see cref="DatabasePath"/>.</summary>
    /// <value>The default is <see langword="null"/>: the SQLite store.</value>
    /// <remarks>Set by store packages (<c>UsePostgreSql</c> in Converge.Work.PostgreSql), not by apps.</remarks>
    [Experimental(WorkStoreContract.DiagnosticId)]
    public IWorkStoreProvider? StoreProvider { get; set; }

    /// <summary>Checks the options and lists what is wrong.</summary>
    /// <returns>The problems found; empty when the options are valid.</returns>
    internal IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (StoreProvider is null && string.IsNullOrWhiteSpace(DatabasePath))
        {
            errors.Add("DatabasePath is required: the SQLite file that holds the work.");
        }

        if (MaxConcurrency is < 1 or > 10_000)
        {
            errors.Add($"MaxConcurrency must be between 1 and 10,000; it is {MaxConcurrency}.");
        }

        if (ExecutionTimeout != Timeout.InfiniteTimeSpan)
        {
            Positive(ExecutionTimeout, nameof(ExecutionTimeout));
            if (ExecutionTimeout > TimeSpan.FromDays(49))
            {
                errors.Add($"ExecutionTimeout must be at most 49 days, or Timeout.InfiniteTimeSpan for none; it is {ExecutionTimeout}.");
            }
        }

        if (KeepFinishedWorkFor < TimeSpan.Zero)
        {
            errors.Add($"KeepFinishedWorkFor cannot be negative; it is {KeepFinishedWorkFor}.");
        }

        Positive(MinimumPeriodicInterval, nameof(MinimumPeriodicInterval));
        Positive(MinimumPeriodicFlex, nameof(MinimumPeriodicFlex));
        if (MinimumBackoffDelay < TimeSpan.Zero || MinimumBackoffDelay > WorkSchedule.MaximumBackoffDelay)
        {
            errors.Add($"MinimumBackoffDelay must be between 0 and 5 hours; it is {MinimumBackoffDelay}.");
        }

        if (!Enum.IsDefined(Durability))
        {
            errors.Add($"Durability {Durability} is not defined.");
        }

        return errors;

        void Positive(TimeSpan value, string name)
        {
            if (value <= TimeSpan.Zero)
            {
                errors.Add($"{name} must be positive; it is {value}.");
            }
        }
    }

    /// <summary>Throws when the options are invalid.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    internal void ThrowIfInvalid()
    {
        var errors = Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid WorkManagerOptions: " + string.Join(" ", errors));
        }
    }
}
