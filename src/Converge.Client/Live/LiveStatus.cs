namespace Converge.Client;

/// <summary>The state of a client's live connection (<see cref="ConvergeClient.Live"/>).</summary>
public enum LiveStatus
{
    /// <summary>Not started, or stopped: changes arrive only through <see cref="ConvergeClient.SyncAsync"/>.</summary>
    Stopped,

    /// <summary>Connecting, or catching up after connecting (pushing the outbox and pulling what was missed).</summary>
    Connecting,

    /// <summary>Connected and caught up: changes of other devices arrive as they commit, and local writes are pushed at once.</summary>
    Live,

    /// <summary>The connection is lost or refused; the client waits (see <see cref="LiveSync.LastError"/>) and tries again. Local writes go on.</summary>
    Offline,
}

/// <summary>Raised when <see cref="LiveSync.Status"/> changes.</summary>
public sealed class LiveStatusChangedEventArgs : EventArgs
{
    internal LiveStatusChangedEventArgs(LiveStatus previous, LiveStatus status, Exception? error)
    {
        Previous = previous;
        Status = status;
        Error = error;
    }

    /// <summary>Gets the status before the change.</summary>
    public LiveStatus Previous { get; }

    /// <summary>Gets the new status.</summary>
    public LiveStatus Status { get; }

    /// <summary>Gets the failure that made the connection <see cref="LiveStatus.Offline"/>, if any.</summary>
    public Exception? Error { get; }
}
