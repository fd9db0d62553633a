using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Converge.Client;

/// <summary>What a change did to a document.</summary>
public enum ChangeKind
{
    /// <summary>The whole document was written (a local put, or a remote change: the document's new value).</summary>
    Put,

    /// <summary>Some fields were written (a local patch).</summary>
    Patch,

    /// <summary>The document was deleted.</summary>
    Delete,

    /// <summary>A counter field was incremented (a local increment).</summary>
    Increment,

    /// <summary>A conflict was resolved and the chosen values written (a local resolution).</summary>
    Resolve,
}

/// <summary>Where a change came from.</summary>
public enum ChangeOrigin
{
    /// <summary>A write made through this client.</summary>
    Local,

    /// <summary>A change that sync brought from the server, or the server's verdict on a local write.</summary>
    Remote,
}

/// <summary>A change of one document in the local store, as delivered by events and watch streams.</summary>
/// <remarks>Holds the new local value as the JSON text the store wrote, parsed only when a subscriber reads it.</remarks>
internal sealed class StoreChange(string scope, string collection, string id, ChangeKind kind, ChangeOrigin origin, string? json)
{
    private StrongBox<JsonElement>? _value;

    public string Scope { get; } = scope;

    public string Collection { get; } = collection;

    public string Id { get; } = id;

    public ChangeKind Kind { get; } = kind;

    public ChangeOrigin Origin { get; } = origin;

    /// <summary>Gets the new local value as JSON text; <see langword="null"/> when the document is deleted.</summary>
    public string? Json { get; } = json;

    /// <summary>Gets the new local value; <see langword="null"/> when the document is deleted.</summary>
    public JsonElement? Value
    {
        get
        {
            if (Json is null)
            {
                return null;
            }

            var value = Volatile.Read(ref _value);
            if (value is null)
            {
                // Parsed at most a few times when threads race; every result is the same.
                value = new StrongBox<JsonElement>(JsonElement.Parse(Json));
                Volatile.Write(ref _value, value);
            }

            return value.Value;
        }
    }
}

/// <summary>A change of one document: raised by <see cref="DocumentCollection{T}.Changed"/> and yielded by its watch streams.</summary>
/// <typeparam name="T">The collection's document type.</typeparam>
public sealed class DocumentChangedEventArgs<T> : EventArgs
{
    private readonly StoreChange _change;
    private readonly JsonTypeInfo<T> _typeInfo;

    // Deserialized on first read, once, as Lazy<T> would; Lazy<T> itself would make trimmed apps keep T's parameterless constructor.
    private T? _value;
    private bool _deserialized;
    private object? _lock;

    internal DocumentChangedEventArgs(StoreChange change, JsonTypeInfo<T> typeInfo)
    {
        Scope = change.Scope;
        Collection = change.Collection;
        Id = change.Id;
        Kind = change.Kind;
        Origin = change.Origin;
        _change = change;
        _typeInfo = typeInfo;
    }

    /// <summary>Gets the document's scope.</summary>
    public string Scope { get; }

    /// <summary>Gets the document's collection.</summary>
    public string Collection { get; }

    /// <summary>Gets the document's id.</summary>
    public string Id { get; }

    /// <summary>Gets what the change did.</summary>
    public ChangeKind Kind { get; }

    /// <summary>Gets where the change came from.</summary>
    public ChangeOrigin Origin { get; }

    /// <summary>Gets the document's new local value as JSON; <see langword="null"/> when it is deleted.</summary>
    /// <remarks>Parsed on first read.</remarks>
    public JsonElement? Json => _change.Value;

    /// <summary>Gets the document's new local value; <see langword="null"/> (default) when it is deleted.</summary>
    /// <remarks>Deserialized on first read.</remarks>
    /// <exception cref="JsonException">The JSON does not fit <typeparamref name="T"/>.</exception>
    public T? Value => LazyInitializer.EnsureInitialized(ref _value, ref _deserialized, ref _lock, Deserialize);

    private T? Deserialize() => _change.Json is { } json ? JsonSerializer.Deserialize(json, _typeInfo) : default;
}
