using System.Text.Json;
using System.Text.Json.Serialization;

namespace Converge.Protocol.Documents;

/// <summary>The state of one document as the server keeps it: each top-level field with the timestamp of its last write, and the deletion, if any.</summary>
/// <remarks>
/// A deleted document is a tombstone that keeps its fields, so a concurrent update can revive it under
/// <see cref="DeleteRule.UpdateWins"/>; tombstones are collected after the server's retention period. Immutable: the
/// merge functions in <see cref="DocumentMerge"/> return new states and never change the dictionaries they are given.
/// </remarks>
public sealed record DocumentState
{
    /// <summary>Gets an empty, live document.</summary>
    public static DocumentState Empty { get; } = new();

    /// <summary>Gets the fields, removed ones included.</summary>
    [JsonPropertyName("f")]
    public IReadOnlyDictionary<string, FieldState> Fields { get; init; } = new Dictionary<string, FieldState>(StringComparer.Ordinal);

    /// <summary>Gets a value indicating whether the document is deleted.</summary>
    [JsonPropertyName("del")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Deleted { get; init; }

    /// <summary>Gets the timestamp of the document's last deletion; kept after a revival, like the revision and replica below.</summary>
    [JsonPropertyName("dh")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public HybridTimestamp? DeletedHlc { get; init; }

    /// <summary>Gets the server revision of the document's last deletion, 0 if never deleted; writes that had not seen it are concurrent with it.</summary>
    [JsonPropertyName("dr")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long DeletedRevision { get; init; }

    /// <summary>Gets the replica that last deleted the document.</summary>
    [JsonPropertyName("dw")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public ulong DeletedBy { get; init; }

    /// <summary>Gets the revision of the latest delete by a replica other than <see cref="DeletedBy"/>.</summary>
    [JsonPropertyName("dr2")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long OtherDeletedRevision { get; init; }

    /// <summary>Gets the revision of the latest update (UpdateWins bookkeeping).</summary>
    [JsonPropertyName("ur")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long UpdatedRevision { get; init; }

    /// <summary>Gets the replica of the latest update.</summary>
    [JsonPropertyName("uw")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public ulong UpdatedBy { get; init; }

    /// <summary>Gets the revision of the latest update by a replica other than <see cref="UpdatedBy"/>.</summary>
    [JsonPropertyName("ur2")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long OtherUpdatedRevision { get; init; }

    internal long LastDeleteByOtherThan(ulong writer) => DeletedBy != writer ? DeletedRevision : OtherDeletedRevision;

    internal long LastUpdateByOtherThan(ulong writer) => UpdatedBy != writer ? UpdatedRevision : OtherUpdatedRevision;

    internal DocumentState WithDelete(ulong writer, long revision) => writer == DeletedBy
        ? this with { DeletedRevision = revision }
        : this with { OtherDeletedRevision = DeletedRevision, DeletedRevision = revision, DeletedBy = writer };

    internal DocumentState WithUpdate(ulong writer, long revision) => writer == UpdatedBy
        ? this with { UpdatedRevision = revision }
        : this with { OtherUpdatedRevision = UpdatedRevision, UpdatedRevision = revision, UpdatedBy = writer };

    /// <summary>Gets the server revision of the document's last change; 0 for a document the server has not seen.</summary>
    [JsonPropertyName("rev")]
    public long Revision { get; init; }

    /// <summary>Gets the live fields' values as a JSON object, the document as an application sees it.</summary>
    /// <returns>The document's fields, removed fields left out; <see langword="null"/> when the document is deleted.</returns>
    public JsonElement? ToJson()
    {
        if (Deleted)
        {
            return null;
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteValue(writer);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    /// <summary>Writes the live fields' values as a JSON object.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteValue(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        foreach (var (name, field) in Fields)
        {
            if (!field.Removed)
            {
                writer.WritePropertyName(name);
                field.Value.WriteTo(writer);
            }
        }

        writer.WriteEndObject();
    }

    /// <summary>Gets a value indicating whether two states hold the same document: same deletion and same field values and timestamps, whatever the revisions.</summary>
    /// <param name="other">The other state.</param>
    /// <returns>Whether the content is equal.</returns>
    public bool SameContentAs(DocumentState other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (Deleted != other.Deleted || Fields.Count != other.Fields.Count)
        {
            return false;
        }

        foreach (var (name, field) in Fields)
        {
            if (!other.Fields.TryGetValue(name, out var theirs) || !field.SameValueAs(theirs) || field.Hlc != theirs.Hlc)
            {
                return false;
            }
        }

        return true;
    }
}
