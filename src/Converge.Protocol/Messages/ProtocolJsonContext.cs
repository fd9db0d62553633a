using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol.Documents;

namespace Converge.Protocol.Messages;

/// <summary>System.Text.Json metadata for every message of the protocol, generated at build time, so neither side needs reflection.</summary>
public static class ProtocolJson
{
    /// <summary>Gets the serializer options of the protocol: its depth bound and its converters.</summary>
    public static JsonSerializerOptions Options => ProtocolJsonContext.Default.Options;

    /// <summary>Gets the metadata of <see cref="Messages.PushRequest"/>.</summary>
    public static JsonTypeInfo<PushRequest> PushRequest => ProtocolJsonContext.Default.PushRequest;

    /// <summary>Gets the metadata of <see cref="Messages.Mutation"/>, for outboxes that store mutations as the protocol writes them.</summary>
    public static JsonTypeInfo<Mutation> Mutation => ProtocolJsonContext.Default.Mutation;

    /// <summary>Gets the metadata of <see cref="Messages.PushResponse"/>.</summary>
    public static JsonTypeInfo<PushResponse> PushResponse => ProtocolJsonContext.Default.PushResponse;

    /// <summary>Gets the metadata of <see cref="Messages.PullResponse"/>.</summary>
    public static JsonTypeInfo<PullResponse> PullResponse => ProtocolJsonContext.Default.PullResponse;

    /// <summary>Gets the metadata of <see cref="Messages.ConflictRecord"/>.</summary>
    public static JsonTypeInfo<ConflictRecord> ConflictRecord => ProtocolJsonContext.Default.ConflictRecord;

    /// <summary>Gets the metadata of a list of <see cref="Messages.ConflictRecord"/>.</summary>
    public static JsonTypeInfo<IReadOnlyList<ConflictRecord>> ConflictRecords => ProtocolJsonContext.Default.IReadOnlyListConflictRecord;

    /// <summary>Gets the metadata of <see cref="Messages.ResolveConflictRequest"/>.</summary>
    public static JsonTypeInfo<ResolveConflictRequest> ResolveConflictRequest => ProtocolJsonContext.Default.ResolveConflictRequest;

    /// <summary>Gets the metadata of <see cref="Documents.DocumentState"/>.</summary>
    public static JsonTypeInfo<DocumentState> DocumentState => ProtocolJsonContext.Default.DocumentState;

    /// <summary>Gets the metadata of <see cref="Messages.HealthResponse"/>.</summary>
    public static JsonTypeInfo<HealthResponse> HealthResponse => ProtocolJsonContext.Default.HealthResponse;
}

[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    GenerationMode = JsonSourceGenerationMode.Default,
    MaxDepth = ProtocolLimits.MaxMessageDepth,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(PushRequest))]
[JsonSerializable(typeof(Mutation))]
[JsonSerializable(typeof(PushResponse))]
[JsonSerializable(typeof(PullResponse))]
[JsonSerializable(typeof(ConflictRecord))]
[JsonSerializable(typeof(IReadOnlyList<ConflictRecord>))]
[JsonSerializable(typeof(ResolveConflictRequest))]
[JsonSerializable(typeof(DocumentState))]
[JsonSerializable(typeof(HealthResponse))]
internal sealed partial class ProtocolJsonContext : JsonSerializerContext;

/// <summary>The body of <c>GET /converge/v1/health</c>.</summary>
public sealed record HealthResponse
{
    /// <summary>Gets <c>ok</c> when the server can read and write its store.</summary>
    [JsonPropertyName("status")]
    public required string Status { get; init; }

    /// <summary>Gets the protocol version the server speaks.</summary>
    [JsonPropertyName("protocol")]
    public int Protocol { get; init; } = ProtocolLimits.Version;

    /// <summary>Gets the server's clock.</summary>
    [JsonPropertyName("clock")]
    public required HybridTimestamp Clock { get; init; }
}
