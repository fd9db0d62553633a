using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client.Storage;
using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>Local writes, across collections and scopes, that <see cref="ConvergeClient.WriteBatchAsync"/> commits in one transaction.</summary>
/// <remarks>
/// <para>
/// Each write becomes its own outbox mutation, exactly as if it had been made alone, in the order it was added; a
/// document written twice gets two mutations, the second applied over the first. The batch commits whole or not at
/// all, and the change events of its writes are raised after the commit, in order.
/// </para>
/// <para>
/// Arguments are checked and values serialized when a write is added, so an invalid one throws from the method that
/// adds it. Failures that depend on the stored documents (a patch of a deleted document) throw from
/// <see cref="ConvergeClient.WriteBatchAsync"/>, and nothing of the batch is written.
/// </para>
/// </remarks>
public sealed class WriteBatch
{
    private readonly ConvergeClient _client;
    private readonly List<BatchWrite> _writes = [];

    internal WriteBatch(ConvergeClient client) => _client = client;

    /// <summary>Gets the number of writes added so far.</summary>
    public int Count => _writes.Count;

    internal IReadOnlyList<BatchWrite> Writes => _writes;

    /// <summary>Adds a write of a whole document: its fields become exactly those of <paramref name="value"/>.</summary>
    /// <typeparam name="T">The collection's document type.</typeparam>
    /// <param name="collection">The collection, of this client.</param>
    /// <param name="id">The document's id.</param>
    /// <param name="value">The document.</param>
    /// <returns>This batch.</returns>
    /// <exception cref="ArgumentException">The collection belongs to another client, the id is invalid, or the value is not a JSON object.</exception>
    public WriteBatch Put<T>(DocumentCollection<T> collection, string id, T value)
    {
        Check(collection, id);
        return Add(collection, id, MutationKind.Put, collection.FieldsOf(value, nameof(value)));
    }

    /// <summary>Adds a write of some fields of a document: the top-level properties of <paramref name="changes"/>.</summary>
    /// <typeparam name="T">The collection's document type.</typeparam>
    /// <param name="collection">The collection, of this client.</param>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="changes">An object whose properties are the fields to write, such as <c>new { done = true }</c>, or a <see cref="JsonObject"/>.</param>
    /// <returns>This batch.</returns>
    /// <exception cref="ArgumentException">The collection belongs to another client, the id is invalid, or the changes are not a JSON object.</exception>
    public WriteBatch Patch<T>(DocumentCollection<T> collection, string id, object changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        Check(collection, id);
        return Add(collection, id, MutationKind.Patch, collection.ChangesOf(changes, nameof(changes)));
    }

    /// <summary>Adds a delete of a document; a document already deleted when the batch commits is left as it is.</summary>
    /// <typeparam name="T">The collection's document type.</typeparam>
    /// <param name="collection">The collection, of this client.</param>
    /// <param name="id">The document's id.</param>
    /// <returns>This batch.</returns>
    /// <exception cref="ArgumentException">The collection belongs to another client, or the id is invalid.</exception>
    public WriteBatch Delete<T>(DocumentCollection<T> collection, string id)
    {
        Check(collection, id);
        return Add(collection, id, MutationKind.Delete, null);
    }

    /// <summary>Adds an increment of a counter field.</summary>
    /// <typeparam name="T">The collection's document type.</typeparam>
    /// <param name="collection">The collection, of this client.</param>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="field">The field; a missing field counts as 0.</param>
    /// <param name="amount">The amount to add.</param>
    /// <returns>This batch.</returns>
    /// <exception cref="ArgumentException">The collection belongs to another client, or the id or field name is invalid.</exception>
    public WriteBatch Increment<T>(DocumentCollection<T> collection, string id, string field, long amount) =>
        Increment(collection, id, field, amount.ToString(CultureInfo.InvariantCulture));

    /// <summary>Adds an increment of a counter field.</summary>
    /// <typeparam name="T">The collection's document type.</typeparam>
    /// <param name="collection">The collection, of this client.</param>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="field">The field; a missing field counts as 0.</param>
    /// <param name="amount">The amount to add; a finite number.</param>
    /// <returns>This batch.</returns>
    /// <exception cref="ArgumentException">The collection belongs to another client, the id or field name is invalid, or the amount is not finite.</exception>
    public WriteBatch Increment<T>(DocumentCollection<T> collection, string id, string field, double amount)
    {
        if (!double.IsFinite(amount))
        {
            throw new ArgumentException("An increment must be a finite number.", nameof(amount));
        }

        return Increment(collection, id, field, amount.ToString("R", CultureInfo.InvariantCulture));
    }

    private WriteBatch Increment<T>(DocumentCollection<T> collection, string id, string field, string amount)
    {
        Check(collection, id);
        _client.CheckName(field, "field name", nameof(field));
        using var document = JsonDocument.Parse(amount);
        return Add(collection, id, MutationKind.Increment, new JsonFields { [field] = document.RootElement.Clone() });
    }

    private void Check<T>(DocumentCollection<T> collection, string id)
    {
        ArgumentNullException.ThrowIfNull(collection);
        if (!ReferenceEquals(collection.Client, _client))
        {
            throw new ArgumentException("The collection belongs to another ConvergeClient.", nameof(collection));
        }

        _client.CheckId(id, nameof(id));
    }

    private WriteBatch Add<T>(DocumentCollection<T> collection, string id, MutationKind kind, JsonFields? fields)
    {
        _writes.Add(new BatchWrite(collection.Scope, collection.Name, id, kind, fields));
        return this;
    }
}

/// <summary>One write of a batch, checked and serialized.</summary>
internal sealed record BatchWrite(string Scope, string Collection, string Id, MutationKind Kind, JsonFields? Fields);
