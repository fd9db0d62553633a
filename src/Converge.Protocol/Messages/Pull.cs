using System.Text.Json.Serialization;
using Converge.Protocol.Documents;

namespace Converge.Protocol.Messages;

/// <summary>The response to <c>GET /converge/v1/pull?scope=S&amp;after=C&amp;limit=N</c>: the documents of a scope changed after a cursor, in commit order.</summary>
public sealed record PullResponse
{
    /// <summary>Gets the scope.</summary>
    [JsonPropertyName("scope")]
    public required string Scope { get; init; }

    /// <summary>Gets the cursor to ask after next time: the revision of the last change in this page, or the request's cursor when the page is empty.</summary>
    [JsonPropertyName("cursor")]
    public required long Cursor { get; init; }

    /// <summary>Gets a value indicating whether more changes follow the cursor.</summary>
    [JsonPropertyName("hasMore")]
    public bool HasMore { get; init; }

    /// <summary>Gets a value indicating whether the request's cursor was older than the server's retention: the page starts from the beginning of the scope and the client must drop what it holds of the scope (keeping its outbox) before applying it.</summary>
    [JsonPropertyName("reset")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Reset { get; init; }

    /// <summary>Gets the server's clock.</summary>
    [JsonPropertyName("clock")]
    public required HybridTimestamp Clock { get; init; }

    /// <summary>Gets the id of the server store's history: made when the store is created, and made anew when an operator starts the server on a store restored from a backup.</summary>
    /// <remarks>A client keeps it with its cursor; when it changes, the client's cursors mean nothing to this store, and the client pulls the scope again from 0 as after a reset, keeping its outbox.</remarks>
    [JsonPropertyName("epoch")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Epoch { get; init; }

    /// <summary>Gets the changed documents, each with its whole current state, in revision order.</summary>
    [JsonPropertyName("changes")]
    public required IReadOnlyList<DocumentChange> Changes { get; init; }

    /// <summary>Gets the conflict records created or resolved after the cursor, in revision order.</summary>
    [JsonPropertyName("conflicts")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ConflictRecord>? Conflicts { get; init; }
}

/// <summary>A document's current state in a pull page or a live message.</summary>
public sealed record DocumentChange
{
    /// <summary>Gets the collection.</summary>
    [JsonPropertyName("collection")]
    public required string Collection { get; init; }

    /// <summary>Gets the document's id.</summary>
    [JsonPropertyName("id")]
    public required string DocumentId { get; init; }

    /// <summary>Gets the document's state; its <see cref="DocumentState.Revision"/> is the change's place in the scope's order.</summary>
    [JsonPropertyName("state")]
    public required DocumentState State { get; init; }
}
