using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>Protocol metadata the store serializes with: the generated protocol context, so the store needs no reflection.</summary>
internal static class StoreJson
{
    /// <summary>Gets the metadata of a mutation, as it sits in the outbox (the same JSON as on the wire).</summary>
    public static JsonTypeInfo<Mutation> Mutation => ProtocolJson.Mutation;

    public static Mutation DeserializeMutation(string json) =>
        JsonSerializer.Deserialize(json, Mutation) ?? throw new InvalidDataException("An outbox row holds no mutation.");

    public static string Serialize(DocumentState state) => JsonSerializer.Serialize(state, ProtocolJson.DocumentState);

    public static DocumentState? DeserializeState(string? json) =>
        json is null ? null : JsonSerializer.Deserialize(json, ProtocolJson.DocumentState);

    public static string Serialize(ConflictRecord record) => JsonSerializer.Serialize(record, ProtocolJson.ConflictRecord);

    public static ConflictRecord DeserializeConflict(string json) =>
        JsonSerializer.Deserialize(json, ProtocolJson.ConflictRecord) ?? throw new InvalidDataException("A conflict row holds no record.");
}
