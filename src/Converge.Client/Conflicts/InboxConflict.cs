using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>Where a conflict of the inbox stands on this client.</summary>
public enum InboxConflictStatus
{
    /// <summary>Waiting for a person: the document keeps the server's values for the conflicting fields.</summary>
    Open,

    /// <summary>Resolved on this client; the resolution waits in the outbox for the next sync.</summary>
    Resolving,

    /// <summary>Resolved on the server (by this client or another); it leaves the inbox.</summary>
    Resolved,
}

/// <summary>The choice that resolves a conflict.</summary>
public enum ConflictChoice
{
    /// <summary>Keep the values of the write that met the conflict (the conflict record's client values), whichever device made it.</summary>
    Mine,

    /// <summary>Keep the server's values, the ones the document holds while the conflict is open.</summary>
    Theirs,
}

/// <summary>A conflict in the inbox: a document's fields that two replicas edited concurrently under the Manual policy.</summary>
public sealed class InboxConflict
{
    internal InboxConflict(ConflictRecord record, InboxConflictStatus status)
    {
        Record = record;
        Status = status;
    }

    /// <summary>Gets the conflict's id.</summary>
    public string Id => Record.Id;

    /// <summary>Gets the document's scope.</summary>
    public string Scope => Record.Scope;

    /// <summary>Gets the document's collection.</summary>
    public string Collection => Record.Collection;

    /// <summary>Gets the document's id.</summary>
    public string DocumentId => Record.DocumentId;

    /// <summary>Gets the conflicting fields, each with the base, server and client values.</summary>
    public IReadOnlyList<ConflictField> Fields => Record.Fields;

    /// <summary>Gets when the server recorded the conflict.</summary>
    public DateTimeOffset CreatedAt => Record.CreatedAt;

    /// <summary>Gets where the conflict stands on this client.</summary>
    public InboxConflictStatus Status { get; }

    /// <summary>Gets the server's record of the conflict, as last pulled.</summary>
    public ConflictRecord Record { get; }
}

/// <summary>A change in the conflict inbox: a conflict arrived, was resolved here, or was resolved on the server.</summary>
public sealed class ConflictChangedEventArgs : EventArgs
{
    internal ConflictChangedEventArgs(InboxConflict conflict)
    {
        ConflictId = conflict.Id;
        Status = conflict.Status;
        Conflict = conflict;
    }

    internal ConflictChangedEventArgs(string droppedId)
    {
        ConflictId = droppedId;
        Status = InboxConflictStatus.Resolved;
    }

    /// <summary>Gets the conflict's id.</summary>
    public string ConflictId { get; }

    /// <summary>Gets the conflict's new status; <see cref="InboxConflictStatus.Resolved"/> means it left the inbox.</summary>
    public InboxConflictStatus Status { get; }

    /// <summary>Gets the conflict; <see langword="null"/> when it left the inbox because the server reset the scope.</summary>
    public InboxConflict? Conflict { get; }
}
