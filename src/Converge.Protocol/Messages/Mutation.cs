using System.Text.Json;
using System.Text.Json.Serialization;

namespace Converge.Protocol.Messages;

/// <summary>What a mutation does to its document.</summary>
[JsonConverter(typeof(Json.StrictEnumConverter<MutationKind>))]
public enum MutationKind
{
    /// <summary>Sets the whole document: the fields given, and removes the fields listed in <see cref="Mutation.Remove"/>; revives a document the writer saw deleted.</summary>
    [JsonStringEnumMemberName("put")]
    Put,

    /// <summary>Sets only the fields given (and removes those listed); the others keep their values.</summary>
    [JsonStringEnumMemberName("patch")]
    Patch,

    /// <summary>Deletes the document, leaving a tombstone.</summary>
    [JsonStringEnumMemberName("delete")]
    Delete,

    /// <summary>Adds each given number to its counter field (a missing field counts as 0); never conflicts.</summary>
    [JsonStringEnumMemberName("increment")]
    Increment,

    /// <summary>Resolves a conflict (<see cref="Mutation.ConflictId"/>) by writing the chosen values, whatever the collection's policy.</summary>
    [JsonStringEnumMemberName("resolve")]
    Resolve,
}

/// <summary>One local write as it travels from a client's outbox to the server.</summary>
/// <remarks>
/// All the fields of one mutation carry the same timestamp (<see cref="Hlc"/>): a local write is one event.
/// <see cref="BaseRevision"/> is the document's server revision the writer had seen; a field the server changed after
/// it, by another replica, is a concurrent edit and the collection's conflict policy decides it.
/// </remarks>
public sealed record Mutation
{
    /// <summary>Gets the mutation's id: per client, increasing by one from 1; the server applies each id once.</summary>
    [JsonPropertyName("id")]
    public required long Id { get; init; }

    /// <summary>Gets the scope the document belongs to.</summary>
    [JsonPropertyName("scope")]
    public required string Scope { get; init; }

    /// <summary>Gets the collection's name.</summary>
    [JsonPropertyName("collection")]
    public required string Collection { get; init; }

    /// <summary>Gets the document's id within the collection and scope.</summary>
    [JsonPropertyName("doc")]
    public required string DocumentId { get; init; }

    /// <summary>Gets what the mutation does.</summary>
    [JsonPropertyName("op")]
    public required MutationKind Kind { get; init; }

    /// <summary>Gets the timestamp of the write, the writer's hybrid clock at the time.</summary>
    [JsonPropertyName("hlc")]
    public required HybridTimestamp Hlc { get; init; }

    /// <summary>Gets the document's server revision the writer had seen; 0 when it had not seen the document on the server.</summary>
    [JsonPropertyName("base")]
    public long BaseRevision { get; init; }

    /// <summary>Gets the fields written (for <see cref="MutationKind.Increment"/>, the amounts to add).</summary>
    [JsonPropertyName("fields")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, JsonElement>? Fields { get; init; }

    /// <summary>Gets the fields removed.</summary>
    [JsonPropertyName("remove")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Remove { get; init; }

    /// <summary>Gets the values the written fields had in the writer's base, for custom resolvers and conflict records; a field the base did not have is left out.</summary>
    [JsonPropertyName("baseValues")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, JsonElement>? BaseValues { get; init; }

    /// <summary>Gets the conflict a <see cref="MutationKind.Resolve"/> mutation resolves.</summary>
    [JsonPropertyName("conflict")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ConflictId { get; init; }
}
