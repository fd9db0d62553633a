using System.Text.Json;
using System.Text.Json.Serialization;

namespace Converge.Protocol.Documents;

/// <summary>One top-level field of a document: its value, the timestamp of its last write, and where that write sits in the server's order.</summary>
/// <remarks>
/// A removed field keeps its timestamp (<see cref="Removed"/>), so a concurrent older write cannot bring it back under
/// last-writer-wins. On the wire: <c>{"v": value, "h": timestamp, "d": true when removed, "r": revision, "w": writer}</c>;
/// <c>w</c> is left out when it equals the timestamp's node.
/// </remarks>
public sealed record FieldState
{
    /// <summary>Gets the value; <see cref="JsonValueKind.Undefined"/> when the field is removed.</summary>
    [JsonPropertyName("v")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public JsonElement Value { get; init; }

    /// <summary>Gets the timestamp of the field's last write.</summary>
    [JsonPropertyName("h")]
    public required HybridTimestamp Hlc { get; init; }

    /// <summary>Gets a value indicating whether the last write removed the field.</summary>
    [JsonPropertyName("d")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Removed { get; init; }

    /// <summary>Gets the server revision (within the document's scope) of the field's last write; 0 before the server saw it.</summary>
    [JsonPropertyName("r")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long Revision { get; init; }

    /// <summary>Gets the replica that made the last write, when it is not <see cref="HybridTimestamp.Node"/> of <see cref="Hlc"/>.</summary>
    [JsonPropertyName("w")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ulong? WriterOverride { get; init; }

    /// <summary>Gets the replica that made the last write.</summary>
    [JsonIgnore]
    public ulong Writer => WriterOverride ?? Hlc.Node;

    /// <summary>Creates the state of a field written with a value.</summary>
    /// <param name="value">The value; it must not be <see cref="JsonValueKind.Undefined"/>.</param>
    /// <param name="hlc">The write's timestamp.</param>
    /// <param name="revision">The server revision, or 0.</param>
    /// <param name="writer">The replica that wrote it.</param>
    /// <returns>The field state.</returns>
    public static FieldState Written(JsonElement value, HybridTimestamp hlc, long revision, ulong writer) => new()
    {
        Value = value,
        Hlc = hlc,
        Revision = revision,
        WriterOverride = writer == hlc.Node ? null : writer,
    };

    /// <summary>Creates the state of a removed field.</summary>
    /// <param name="hlc">The removal's timestamp.</param>
    /// <param name="revision">The server revision, or 0.</param>
    /// <param name="writer">The replica that removed it.</param>
    /// <returns>The field state.</returns>
    public static FieldState RemovedAt(HybridTimestamp hlc, long revision, ulong writer) => new()
    {
        Removed = true,
        Hlc = hlc,
        Revision = revision,
        WriterOverride = writer == hlc.Node ? null : writer,
    };

    /// <summary>Gets a value indicating whether this state holds the same value (or the same removal) as another, whatever the timestamps.</summary>
    /// <param name="other">The other state.</param>
    /// <returns>Whether the values are equal.</returns>
    public bool SameValueAs(FieldState? other) =>
        other is not null && Removed == other.Removed && (Removed || JsonElement.DeepEquals(Value, other.Value));
}
