using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using Converge.Client.Storage;
using Converge.Protocol.Messages;

namespace Converge.Client;

/// <summary>A collection of JSON documents of one scope, read and written as <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The document type; it must serialize to a JSON object, whose top-level properties are the document's fields.</typeparam>
/// <remarks>
/// <para>
/// Every write commits the document's new local value and an outbox mutation in one SQLite transaction, then raises
/// <see cref="Changed"/> and feeds the watch streams, before its task completes. Writes never wait for the network.
/// </para>
/// <para>
/// Each top-level field is the unit of merging: concurrent writes of different fields by different devices never
/// collide. Get instances with <see cref="ConvergeClient.Collection{T}(string, string?)"/>; they are cheap, and all
/// instances of one name and scope see the same documents.
/// </para>
/// </remarks>
public sealed class DocumentCollection<T>
{
    private readonly ConvergeClient _client;
    private readonly Lock _lock = new();
    private EventHandler<DocumentChangedEventArgs<T>>? _changed;
    private IDisposable? _subscription;

    internal DocumentCollection(ConvergeClient client, string scope, string name, JsonTypeInfo<T> typeInfo)
    {
        _client = client;
        Scope = scope;
        Name = name;
        TypeInfo = typeInfo;
    }

    /// <summary>Gets the collection's name.</summary>
    public string Name { get; }

    /// <summary>Gets the collection's scope.</summary>
    public string Scope { get; }

    internal JsonTypeInfo<T> TypeInfo { get; }

    internal ConvergeClient Client => _client;

    /// <summary>Raised after each committed change of a document of this collection and scope, local or remote, on the thread that committed it.</summary>
    /// <remarks>A handler that throws is logged; the change stays committed and the other handlers still run.</remarks>
    public event EventHandler<DocumentChangedEventArgs<T>>? Changed
    {
        add
        {
            lock (_lock)
            {
                _changed += value;
                _subscription ??= _client.Changes.Subscribe(change =>
                {
                    if (Matches(change, null))
                    {
                        Events.Raise(_changed, this, new DocumentChangedEventArgs<T>(change, TypeInfo), _client.Logger);
                    }
                });
            }
        }

        remove
        {
            lock (_lock)
            {
                _changed -= value;
                if (_changed is null)
                {
                    _subscription?.Dispose();
                    _subscription = null;
                }
            }
        }
    }

    /// <summary>Writes a whole document: its fields become exactly those of <paramref name="value"/>; fields it lacks are removed.</summary>
    /// <param name="id">The document's id.</param>
    /// <param name="value">The document.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the write is committed and its events raised.</returns>
    /// <exception cref="ArgumentException">The id is invalid, or the value is not a JSON object within the protocol's limits (names, depth, size).</exception>
    public Task PutAsync(string id, T value, CancellationToken cancellationToken = default)
    {
        _client.CheckId(id, nameof(id));
        return _client.Writes.WriteAsync(Scope, Name, id, MutationKind.Put, FieldsOf(value, nameof(value)), cancellationToken);
    }

    /// <summary>Writes some fields of a document: the top-level properties of <paramref name="changes"/>; the other fields keep their values.</summary>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="changes">An object whose properties are the fields to write, such as <c>new { done = true }</c>, serialized with <see cref="ConvergeClientOptions.DocumentSerializerOptions"/>.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the write is committed and its events raised.</returns>
    /// <exception cref="ArgumentException">The id is invalid, or the changes are not a non-empty JSON object within the protocol's limits.</exception>
    /// <exception cref="InvalidOperationException">The document is deleted; a put re-creates it.</exception>
    public Task PatchAsync(string id, object changes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (changes is JsonObject node)
        {
            return PatchAsync(id, node, cancellationToken);
        }

        _client.CheckId(id, nameof(id));
        return _client.Writes.WriteAsync(Scope, Name, id, MutationKind.Patch, ChangesOf(changes, nameof(changes)), cancellationToken);
    }

    /// <summary>Writes some fields of a document: the properties of <paramref name="changes"/>; the other fields keep their values.</summary>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="changes">The fields to write; a JSON <see langword="null"/> writes null (it does not remove the field).</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the write is committed and its events raised.</returns>
    /// <exception cref="ArgumentException">The id is invalid, or the changes are empty or outside the protocol's limits.</exception>
    /// <exception cref="InvalidOperationException">The document is deleted; a put re-creates it.</exception>
    public Task PatchAsync(string id, JsonObject changes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(changes);
        _client.CheckId(id, nameof(id));
        return _client.Writes.WriteAsync(Scope, Name, id, MutationKind.Patch, DocumentJson.FieldsOf(changes, nameof(changes)), cancellationToken);
    }

    /// <summary>Deletes a document, leaving a tombstone that syncs.</summary>
    /// <param name="id">The document's id.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns><see langword="true"/> when a delete was written; <see langword="false"/> when the document was already deleted here.</returns>
    /// <remarks>A document this client has never seen can be deleted: the delete syncs, and applies to the server's document of that id.</remarks>
    /// <exception cref="ArgumentException">The id is invalid.</exception>
    public Task<bool> DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        _client.CheckId(id, nameof(id));
        return _client.Writes.WriteAsync(Scope, Name, id, MutationKind.Delete, null, cancellationToken);
    }

    /// <summary>Adds to a counter field; concurrent increments from several devices all add up and never conflict.</summary>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="field">The field; a missing field counts as 0.</param>
    /// <param name="amount">The amount to add (negative to subtract).</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the write is committed and its events raised.</returns>
    /// <exception cref="ArgumentException">The id or field name is invalid.</exception>
    /// <exception cref="InvalidOperationException">The field holds something other than a number, the sum would overflow, or the document is deleted.</exception>
    public Task IncrementAsync(string id, string field, long amount, CancellationToken cancellationToken = default) =>
        IncrementAsync(id, field, amount.ToString(CultureInfo.InvariantCulture), cancellationToken);

    /// <summary>Adds to a counter field; concurrent increments from several devices all add up and never conflict.</summary>
    /// <param name="id">The document's id; a document that does not exist is created.</param>
    /// <param name="field">The field; a missing field counts as 0.</param>
    /// <param name="amount">The amount to add (negative to subtract); a finite number.</param>
    /// <param name="cancellationToken">Cancels before the write.</param>
    /// <returns>A task that completes when the write is committed and its events raised.</returns>
    /// <exception cref="ArgumentException">The id or field name is invalid, or the amount is not finite.</exception>
    /// <exception cref="InvalidOperationException">The field holds something other than a number, or the document is deleted.</exception>
    public Task IncrementAsync(string id, string field, double amount, CancellationToken cancellationToken = default)
    {
        if (!double.IsFinite(amount))
        {
            throw new ArgumentException("An increment must be a finite number.", nameof(amount));
        }

        return IncrementAsync(id, field, amount.ToString("R", CultureInfo.InvariantCulture), cancellationToken);
    }

    /// <summary>Reads a document's local value: the server's state with this client's pending writes applied.</summary>
    /// <param name="id">The document's id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The document, or <see langword="null"/> (default) when it does not exist or is deleted.</returns>
    /// <exception cref="ArgumentException">The id is invalid.</exception>
    /// <exception cref="JsonException">The stored JSON does not fit <typeparamref name="T"/>.</exception>
    public Task<T?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        _client.CheckId(id, nameof(id));
        cancellationToken.ThrowIfCancellationRequested();
        var json = GetJson(id);
        return Task.FromResult(json is null ? default : JsonSerializer.Deserialize(json, TypeInfo));
    }

    /// <summary>Starts a query of the collection's live documents.</summary>
    /// <returns>A query of every document, ordered by id; refine it with its methods.</returns>
    public DocumentQuery<T> Query() => new(this);

    /// <summary>Creates, if missing, an index of a top-level field of this collection, so queries filtering or ordering by it stay fast.</summary>
    /// <param name="field">The field.</param>
    /// <param name="cancellationToken">Cancels before the index is built.</param>
    /// <returns>A task that completes when the index exists.</returns>
    /// <remarks>
    /// An expression index on <c>json_extract</c> of the local value, partial to this collection (its WHERE clause names
    /// the collection), covering every scope: it serves equality filters on the field and ordering by it. Building it
    /// reads the collection once; later writes keep it up to date.
    /// </remarks>
    /// <exception cref="ArgumentException">The field name is invalid or holds a double quote.</exception>
    public async Task EnsureIndexAsync(string field, CancellationToken cancellationToken = default)
    {
        CheckQueryField(_client, field, nameof(field));
        _client.ThrowIfDisposed();
        var sql = $"CREATE INDEX IF NOT EXISTS {IndexName(Name, field)} ON documents (scope, {Extract(field)}, id) WHERE collection = {Literal(Name)};";
        await _client.Store.WriteAsync(tx => tx.Execute(sql), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Streams the changes of this collection's documents, local and remote, from the first <c>MoveNextAsync</c> until cancelled or the client is disposed.</summary>
    /// <param name="cancellationToken">Ends the stream (with <see cref="OperationCanceledException"/>).</param>
    /// <returns>The changes, in the order they were raised.</returns>
    /// <remarks>Changes wait in an unbounded buffer until read; a watcher that stops reading should be cancelled.</remarks>
    public async IAsyncEnumerable<DocumentChangedEventArgs<T>> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (reader, subscription) = Subscribe(null);
        using (subscription)
        {
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var change))
                {
                    yield return change;
                }
            }
        }
    }

    /// <summary>Streams the changes of one document, local and remote, from the first <c>MoveNextAsync</c> until cancelled or the client is disposed.</summary>
    /// <param name="id">The document's id.</param>
    /// <param name="cancellationToken">Ends the stream (with <see cref="OperationCanceledException"/>).</param>
    /// <returns>The changes, in the order they were raised.</returns>
    /// <exception cref="ArgumentException">The id is invalid.</exception>
    public async IAsyncEnumerable<DocumentChangedEventArgs<T>> WatchAsync(string id, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        _client.CheckId(id, nameof(id));
        var (reader, subscription) = Subscribe(id);
        using (subscription)
        {
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var change))
                {
                    yield return change;
                }
            }
        }
    }

    /// <summary>The fields of a whole document of this collection.</summary>
    internal JsonFields FieldsOf(T value, string parameter) =>
        DocumentJson.FieldsOf(JsonSerializer.SerializeToElement(value, TypeInfo), parameter, owned: true);

    /// <summary>The fields a patch writes: a <see cref="JsonObject"/>, a <see cref="JsonElement"/> object, or any object serialized with the client's options.</summary>
    internal JsonFields ChangesOf(object changes, string parameter) => changes switch
    {
        JsonObject node => DocumentJson.FieldsOf(node, parameter),
        JsonElement element => DocumentJson.FieldsOf(element, parameter),
        _ => DocumentJson.FieldsOf(JsonSerializer.SerializeToElement(changes, _client.DocumentOptions.GetTypeInfo(changes.GetType())), parameter, owned: true),
    };

    internal string? GetJson(string id)
    {
        _client.ThrowIfDisposed();
        using var connection = _client.Store.OpenRead();
        return StoreReads.LocalValue(connection, Scope, Name, id);
    }

    internal static void CheckQueryField(ConvergeClient client, string field, string parameter)
    {
        client.CheckName(field, "field name", parameter);
        if (field.Contains('"', StringComparison.Ordinal))
        {
            throw new ArgumentException($"Field '{field}' holds a double quote, which SQLite's JSON paths cannot name; it cannot be queried or indexed.", parameter);
        }
    }

    /// <summary>The SQL expression of a top-level field of the local value: the same text in queries and indexes, so SQLite matches them.</summary>
    internal static string Extract(string field) => $"json_extract(local_value, {Literal("$.\"" + field + "\"")})";

    internal static string JsonType(string field) => $"json_type(local_value, {Literal("$.\"" + field + "\"")})";

    /// <summary>A SQL string literal. Partial indexes are used only by queries that name the same literal, never a parameter.</summary>
    internal static string Literal(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    internal static string IndexName(string collection, string field)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(collection + "\0" + field));
        return "documents_field_" + Convert.ToHexStringLower(hash, 0, 8);
    }

    private Task IncrementAsync(string id, string field, string amount, CancellationToken cancellationToken)
    {
        _client.CheckId(id, nameof(id));
        _client.CheckName(field, "field name", nameof(field));
        using var document = JsonDocument.Parse(amount);
        var fields = new JsonFields { [field] = document.RootElement.Clone() };
        return _client.Writes.WriteAsync(Scope, Name, id, MutationKind.Increment, fields, cancellationToken);
    }

    private bool Matches(StoreChange change, string? id) =>
        change.Collection == Name && change.Scope == Scope && (id is null || change.Id == id);

    private (ChannelReader<DocumentChangedEventArgs<T>> Reader, IDisposable Subscription) Subscribe(string? id)
    {
        _client.ThrowIfDisposed();
        var channel = Channel.CreateUnbounded<DocumentChangedEventArgs<T>>(new UnboundedChannelOptions { SingleReader = true });
        var subscription = _client.Changes.Subscribe(
            change =>
            {
                if (Matches(change, id))
                {
                    channel.Writer.TryWrite(new DocumentChangedEventArgs<T>(change, TypeInfo));
                }
            },
            () => channel.Writer.TryComplete());
        return (channel.Reader, subscription);
    }
}
