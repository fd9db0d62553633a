using System.Text.Json.Serialization;

namespace Converge.Protocol.Messages;

/// <summary>The body of <c>POST /converge/v1/push</c>: a batch of one client's mutations, in its outbox's order.</summary>
public sealed record PushRequest
{
    /// <summary>Gets the client's replica id: 16 lowercase hex digits, the node of its hybrid clock.</summary>
    [JsonPropertyName("client")]
    public required string ClientId { get; init; }

    /// <summary>Gets the client's clock when it sent the batch.</summary>
    [JsonPropertyName("clock")]
    public required HybridTimestamp Clock { get; init; }

    /// <summary>Gets the mutations, ids increasing.</summary>
    [JsonPropertyName("mutations")]
    public required IReadOnlyList<Mutation> Mutations { get; init; }
}

/// <summary>The response to a push: one result per mutation, in order.</summary>
public sealed record PushResponse
{
    /// <summary>Gets the server's clock after the batch; the client receives it into its own clock.</summary>
    [JsonPropertyName("clock")]
    public required HybridTimestamp Clock { get; init; }

    /// <summary>Gets the results, one per mutation of the request, in the same order.</summary>
    [JsonPropertyName("results")]
    public required IReadOnlyList<MutationResult> Results { get; init; }
}

/// <summary>What the server did with a mutation.</summary>
[JsonConverter(typeof(Json.StrictEnumConverter<MutationStatus>))]
public enum MutationStatus
{
    /// <summary>Applied as written.</summary>
    [JsonStringEnumMemberName("applied")]
    Applied,

    /// <summary>Applied in part: the conflict policy kept some of the server's values, or a concurrent delete discarded the write.</summary>
    [JsonStringEnumMemberName("merged")]
    Merged,

    /// <summary>Manual policy: the fields without a conflict applied, the others wait in a conflict record (<see cref="MutationResult.ConflictId"/>).</summary>
    [JsonStringEnumMemberName("conflict")]
    Conflict,

    /// <summary>Refused, changing nothing (<see cref="MutationResult.Reason"/> says why); the client drops it from its outbox.</summary>
    [JsonStringEnumMemberName("rejected")]
    Rejected,

    /// <summary>Already applied by an earlier push of the same mutation id; nothing was done again.</summary>
    [JsonStringEnumMemberName("duplicate")]
    Duplicate,
}

/// <summary>The server's answer for one mutation.</summary>
public sealed record MutationResult
{
    /// <summary>Gets the mutation's id.</summary>
    [JsonPropertyName("id")]
    public required long Id { get; init; }

    /// <summary>Gets what the server did.</summary>
    [JsonPropertyName("status")]
    public required MutationStatus Status { get; init; }

    /// <summary>Gets the document's revision after the mutation; 0 when nothing changed.</summary>
    [JsonPropertyName("rev")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long Revision { get; init; }

    /// <summary>Gets the conflict record's id, for <see cref="MutationStatus.Conflict"/>.</summary>
    [JsonPropertyName("conflict")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ConflictId { get; init; }

    /// <summary>Gets why the server merged or rejected the mutation.</summary>
    [JsonPropertyName("reason")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reason { get; init; }

    /// <summary>Gets the server's timestamp, when the mutation's was too far ahead of the server's clock and was replaced.</summary>
    [JsonPropertyName("restamped")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public HybridTimestamp? Restamped { get; init; }
}
