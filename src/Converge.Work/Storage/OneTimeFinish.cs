using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>The result of a one-time work item's run, as stored.</summary>
[Experimental(WorkStoreContract.DiagnosticId)]
public sealed class OneTimeFinish
{
    /// <summary>Gets the work id.</summary>
    public required Guid Id { get; init; }

    /// <summary>Gets the state the work finished in: succeeded or failed.</summary>
    public required WorkState State { get; init; }

    /// <summary>Gets the work's output, as JSON.</summary>
    public required string OutputJson { get; init; }

    /// <summary>Gets why the work failed, if it did.</summary>
    public string? FailureReason { get; init; }
}
