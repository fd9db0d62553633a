using System.Text.Json;
using System.Text.Json.Serialization;
using Converge.Protocol.Documents;

namespace Converge.Protocol.Messages;

/// <summary>Whether a conflict still waits for a person.</summary>
[JsonConverter(typeof(Json.StrictEnumConverter<ConflictStatus>))]
public enum ConflictStatus
{
    /// <summary>Waiting: the server kept its values for the conflicting fields.</summary>
    [JsonStringEnumMemberName("open")]
    Open,

    /// <summary>Resolved; the chosen values were written like any write.</summary>
    [JsonStringEnumMemberName("resolved")]
    Resolved,
}

/// <summary>A conflict the Manual policy left for a person: the fields two replicas edited concurrently, with both values.</summary>
public sealed record ConflictRecord
{
    /// <summary>Gets the conflict's id.</summary>
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    /// <summary>Gets the document's scope.</summary>
    [JsonPropertyName("scope")]
    public required string Scope { get; init; }

    /// <summary>Gets the document's collection.</summary>
    [JsonPropertyName("collection")]
    public required string Collection { get; init; }

    /// <summary>Gets the document's id.</summary>
    [JsonPropertyName("doc")]
    public required string DocumentId { get; init; }

    /// <summary>Gets the scope revision at which the record was created or last changed.</summary>
    [JsonPropertyName("rev")]
    public long Revision { get; init; }

    /// <summary>Gets whether the conflict is open or resolved.</summary>
    [JsonPropertyName("status")]
    public ConflictStatus Status { get; init; }

    /// <summary>Gets the conflicting fields.</summary>
    [JsonPropertyName("fields")]
    public required IReadOnlyList<ConflictField> Fields { get; init; }

    /// <summary>Gets the replica whose write met the conflict.</summary>
    [JsonPropertyName("client")]
    public required string ClientId { get; init; }

    /// <summary>Gets the id of the mutation that met the conflict.</summary>
    [JsonPropertyName("mutation")]
    public long MutationId { get; init; }

    /// <summary>Gets when the server recorded the conflict.</summary>
    [JsonPropertyName("createdAt")]
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Gets how it was resolved, once resolved: <c>server</c>, <c>client</c> or <c>edited</c>.</summary>
    [JsonPropertyName("resolution")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Resolution { get; init; }
}

/// <summary>One field of a conflict: the value the writer started from, the server's and the writer's.</summary>
public sealed record ConflictField
{
    /// <summary>Gets the field's name.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>Gets the value in the writer's base, when it sent one.</summary>
    [JsonPropertyName("base")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Base { get; init; }

    /// <summary>Gets the server's value, which the field keeps until the conflict is resolved.</summary>
    [JsonPropertyName("server")]
    public required FieldState Server { get; init; }

    /// <summary>Gets the writer's value.</summary>
    [JsonPropertyName("client")]
    public required FieldState Client { get; init; }
}

/// <summary>The body of <c>POST /converge/v1/conflicts/{id}/resolve</c>.</summary>
public sealed record ResolveConflictRequest
{
    /// <summary>Gets the choice: <c>server</c> (keep the server's values), <c>client</c> (take the writer's) or <c>edited</c> (take <see cref="Fields"/>).</summary>
    [JsonPropertyName("choice")]
    public required string Choice { get; init; }

    /// <summary>Gets the edited values, for <c>edited</c>: one per conflicting field.</summary>
    [JsonPropertyName("fields")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, JsonElement>? Fields { get; init; }
}
