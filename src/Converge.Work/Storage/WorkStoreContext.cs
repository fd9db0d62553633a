using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;

namespace Converge.Work.Storage;

/// <summary>What a store is opened with.</summary>
[Experimental(WorkStoreContract.DiagnosticId)]
public sealed class WorkStoreContext
{
    /// <summary>Gets the scheduler's options.</summary>
    public required WorkManagerOptions Options { get; init; }

    /// <summary>Gets what a store calls, on any thread, when another process or node committed to it.</summary>
    /// <remarks>
    /// With <see langword="true"/> when it enqueued or cancelled work (look for due work and reconcile runs),
    /// <see langword="false"/> when it only ran work (refresh watchers).
    /// </remarks>
    public required Action<bool> OnWake { get; init; }

    /// <summary>Gets the logger factory.</summary>
    public required ILoggerFactory LoggerFactory { get; init; }

    /// <summary>Gets the clock.</summary>
    public required TimeProvider TimeProvider { get; init; }
}
