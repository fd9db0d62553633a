using System.Net;
using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>The client's sync status.</summary>
public enum SyncStatus
{
    /// <summary>The server could not be reached by the last sync round (or none has run yet). Local writes go on and wait in the outbox.</summary>
    Offline,

    /// <summary>A sync round is running.</summary>
    Syncing,

    /// <summary>The last sync round pushed the outbox and pulled every scope to the end.</summary>
    UpToDate,

    /// <summary>
    /// The server answered the last sync round with an error, or its answer broke the protocol; or the round ended but the
    /// server refused some scopes (<see cref="SyncReport.ForbiddenScopes"/>). See <see cref="ConvergeClient.LastError"/>.
    /// </summary>
    Error,
}

/// <summary>The phase a sync round is in.</summary>
public enum SyncPhase
{
    /// <summary>Sending the outbox.</summary>
    Push,

    /// <summary>Receiving changes.</summary>
    Pull,
}

/// <summary>Progress of a sync round, reported after each push batch and each pulled page.</summary>
/// <param name="Phase">The phase.</param>
/// <param name="Scope">The scope being pulled, in <see cref="SyncPhase.Pull"/>.</param>
/// <param name="Pushed">Mutations pushed so far in this round.</param>
/// <param name="Pulled">Documents pulled so far in this round.</param>
public sealed record SyncProgress(SyncPhase Phase, string? Scope, int Pushed, int Pulled);

/// <summary>A local write the server refused; it was dropped from the outbox and the document's local value rebuilt without it.</summary>
/// <param name="MutationId">The mutation's id.</param>
/// <param name="Scope">The document's scope.</param>
/// <param name="Collection">The document's collection.</param>
/// <param name="DocumentId">The document's id.</param>
/// <param name="Kind">What the write did.</param>
/// <param name="Reason">Why the server refused it.</param>
public sealed record RejectedMutation(long MutationId, string Scope, string Collection, string DocumentId, MutationKind Kind, string? Reason);

/// <summary>What one sync round did.</summary>
public sealed record SyncReport
{
    /// <summary>Gets how many outbox mutations the server acknowledged (whatever their result) and were dropped from the outbox.</summary>
    public int Pushed { get; init; }

    /// <summary>Gets how many document changes were pulled and applied.</summary>
    public int Pulled { get; init; }

    /// <summary>Gets how many conflicts came into this device's conflict inbox this round, waiting for a person.</summary>
    /// <remarks>
    /// New to this device: a conflict already in the inbox that arrives again, changed, is not counted again, and neither
    /// is one that arrives already resolved. A conflict this device's own push caused is counted when it arrives.
    /// </remarks>
    public int ConflictsOpened { get; init; }

    /// <summary>Gets how many conflicts of this device's inbox arrived resolved this round, and left it.</summary>
    /// <remarks>
    /// Resolved on this device or another: a resolution is a write, and the resolved conflict comes back to every device
    /// that held it, this one included. <see cref="ConflictsOpened"/> and this are never the same conflict in one round.
    /// </remarks>
    public int ConflictsResolved { get; init; }

    /// <summary>Gets the mutations the server rejected, with its reasons.</summary>
    public IReadOnlyList<RejectedMutation> Rejected { get; init; } = [];

    /// <summary>Gets how many mutations the server re-stamped because this device's clock was too far ahead of its own.</summary>
    public int Restamped { get; init; }

    /// <summary>Gets the scopes the server refused this round (403 <c>scope_forbidden</c>), for pushing or pulling; the other scopes synced.</summary>
    /// <remarks>
    /// The writes of a scope refused for pushing stay in the outbox, set aside behind the others, and are sent again at
    /// the next round. When that round is refused too they stay set aside; none is dropped.
    /// </remarks>
    public IReadOnlyList<string> ForbiddenScopes { get; init; } = [];

    /// <summary>Gets how long the round took.</summary>
    public TimeSpan Duration { get; init; }
}

/// <summary>Raised when <see cref="ConvergeClient.Status"/> changes.</summary>
public sealed class SyncStatusChangedEventArgs : EventArgs
{
    internal SyncStatusChangedEventArgs(SyncStatus previous, SyncStatus status, Exception? error)
    {
        Previous = previous;
        Status = status;
        Error = error;
    }

    /// <summary>Gets the status before the change.</summary>
    public SyncStatus Previous { get; }

    /// <summary>Gets the new status.</summary>
    public SyncStatus Status { get; }

    /// <summary>Gets the failure that caused an <see cref="SyncStatus.Offline"/> or <see cref="SyncStatus.Error"/> status, if any.</summary>
    public Exception? Error { get; }
}

/// <summary>Thrown by <see cref="ConvergeClient.SyncAsync"/> when the server answers with an error status or breaks the protocol.</summary>
/// <remarks>Network failures are not wrapped: they surface as <see cref="HttpRequestException"/> or <see cref="TimeoutException"/>.</remarks>
public sealed class ConvergeSyncException : Exception
{
    /// <summary>Initializes the exception.</summary>
    public ConvergeSyncException()
        : this("The sync server's answer could not be used.")
    {
    }

    /// <summary>Initializes the exception.</summary>
    /// <param name="message">What went wrong.</param>
    public ConvergeSyncException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes the exception.</summary>
    /// <param name="message">What went wrong.</param>
    /// <param name="innerException">The cause.</param>
    public ConvergeSyncException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes the exception for an error response.</summary>
    /// <param name="message">What went wrong.</param>
    /// <param name="statusCode">The HTTP status.</param>
    /// <param name="errorCode">The protocol error code, one of <see cref="ProtocolErrorCodes"/>, when the server sent one.</param>
    public ConvergeSyncException(string message, HttpStatusCode statusCode, string? errorCode)
        : base(message)
    {
        StatusCode = statusCode;
        ErrorCode = errorCode;
    }

    /// <summary>Initializes the exception for an error response that names a scope.</summary>
    internal ConvergeSyncException(string message, HttpStatusCode statusCode, string? errorCode, string? scope)
        : this(message, statusCode, errorCode)
    {
        Scope = scope;
    }

    /// <summary>Gets the HTTP status of the error response; <see langword="null"/> when the server's answer broke the protocol.</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>Gets the protocol error code (<see cref="ProtocolErrorCodes"/>) the server gave, if any.</summary>
    public string? ErrorCode { get; }

    /// <summary>Gets the scope the error names, such as the refused scope of a <c>scope_forbidden</c> error; <see langword="null"/> when it names none.</summary>
    public string? Scope { get; }

    /// <summary>Gets whether the server refused a scope to the caller (403 <c>scope_forbidden</c>).</summary>
    internal bool IsScopeForbidden => StatusCode == HttpStatusCode.Forbidden && ErrorCode == ProtocolErrorCodes.ScopeForbidden;
}
