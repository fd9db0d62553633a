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
internal sealed record StoreChange(string Scope, string Collection, string Id, ChangeKind Kind, ChangeOrigin Origin, JsonElement? Value);

/// <summary>A change of one document: raised by <see cref="DocumentCollection{T}.Changed"/> and yielded by its watch streams.</summary>
/// <typeparam name="T">The collection's document type.</typeparam>
public sealed class DocumentChangedEventArgs<T> : EventArgs
{
    private readonly JsonTypeInfo<T> _typeInfo;
    private readonly Lazy<T?> _value;

    internal DocumentChangedEventArgs(StoreChange change, JsonTypeInfo<T> typeInfo)
    {
        Scope = change.Scope;
        Collection = change.Collection;
        Id = change.Id;
        Kind = change.Kind;
        Origin = change.Origin;
        Json = change.Value;
        _typeInfo = typeInfo;
        _value = new Lazy<T?>(() => Json is { } json ? json.Deserialize(_typeInfo) : default);
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
    public JsonElement? Json { get; }

    /// <summary>Gets the document's new local value; <see langword="null"/> (default) when it is deleted.</summary>
    /// <remarks>Deserialized on first read.</remarks>
    /// <exception cref="JsonException">The JSON does not fit <typeparamref name="T"/>.</exception>
    public T? Value => _value.Value;
}
