using System.Text.Json;

namespace Converge.Protocol.Documents;

/// <summary>How the server decides a field that two replicas changed concurrently.</summary>
public enum ConflictPolicy
{
    /// <summary>The write with the higher hybrid timestamp wins, field by field. The default; every replica converges whatever the order of delivery.</summary>
    LastWriterWins,

    /// <summary>The server's value stays; the concurrent write of that field is dropped.</summary>
    ServerWins,

    /// <summary>The incoming write replaces the server's value.</summary>
    ClientWins,

    /// <summary>A <see cref="ConflictResolver"/> given the base, server and client values returns the merged values.</summary>
    Custom,

    /// <summary>The fields without a conflict apply; the conflicting ones keep the server's value and wait in a conflict record for a person.</summary>
    Manual,
}

/// <summary>What happens when a delete and an update of the same document are concurrent.</summary>
public enum DeleteRule
{
    /// <summary>The document stays deleted; the concurrent update is discarded. The default.</summary>
    DeleteWins,

    /// <summary>The update revives the document with all its fields; the concurrent delete is discarded.</summary>
    UpdateWins,
}

/// <summary>Resolves concurrent edits of a document under <see cref="ConflictPolicy.Custom"/>.</summary>
/// <param name="conflict">The document and its conflicting fields.</param>
/// <returns>The value to keep for each conflicting field; a field left out keeps the server's value.</returns>
public delegate IReadOnlyDictionary<string, JsonElement> ConflictResolver(CustomConflict conflict);

/// <summary>The conflicting fields of one document, given to a <see cref="ConflictResolver"/>.</summary>
/// <param name="Collection">The collection.</param>
/// <param name="DocumentId">The document's id.</param>
/// <param name="Fields">The fields both sides changed.</param>
public sealed record CustomConflict(string Collection, string DocumentId, IReadOnlyList<FieldConflict> Fields);

/// <summary>One field both sides changed; a <see langword="null"/> value means the field is absent or removed on that side.</summary>
/// <param name="Name">The field's name.</param>
/// <param name="Base">The value the writer started from.</param>
/// <param name="Server">The server's current value.</param>
/// <param name="Client">The incoming value.</param>
public sealed record FieldConflict(string Name, JsonElement? Base, JsonElement? Server, JsonElement? Client);

/// <summary>The merge rules of one collection.</summary>
public sealed record CollectionRules
{
    /// <summary>Gets the rules every collection has unless configured: last writer wins, delete wins.</summary>
    public static CollectionRules Default { get; } = new();

    /// <summary>Gets the policy for concurrent edits of the same field.</summary>
    /// <value>The default is <see cref="ConflictPolicy.LastWriterWins"/>.</value>
    public ConflictPolicy Policy { get; init; } = ConflictPolicy.LastWriterWins;

    /// <summary>Gets the rule for a delete concurrent with an update.</summary>
    /// <value>The default is <see cref="DeleteRule.DeleteWins"/>.</value>
    public DeleteRule Delete { get; init; } = DeleteRule.DeleteWins;

    /// <summary>Gets the resolver used under <see cref="ConflictPolicy.Custom"/>.</summary>
    public ConflictResolver? Resolver { get; init; }

    /// <summary>Checks that the rules are complete.</summary>
    /// <exception cref="ArgumentException">The policy is Custom without a resolver, or a value is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Policy))
        {
            throw new ArgumentException($"Unknown conflict policy {Policy}.");
        }

        if (!Enum.IsDefined(Delete))
        {
            throw new ArgumentException($"Unknown delete rule {Delete}.");
        }

        if (Policy == ConflictPolicy.Custom && Resolver is null)
        {
            throw new ArgumentException("The Custom conflict policy needs a Resolver.");
        }
    }
}
