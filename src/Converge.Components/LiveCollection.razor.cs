using Converge.Client;
using Microsoft.AspNetCore.Components;

namespace Converge.Components;

/// <summary>A collection's documents as a live list: a change, local or from another device, renders again only the item it changed.</summary>
/// <remarks>
/// <para>
/// The component reads the documents once (with <see cref="Query"/> when given), then applies the collection's
/// <see cref="DocumentCollection{T}.Changed"/> events to its list in memory: a new or changed document takes its place in
/// the order, a deleted one leaves. Items are keyed by document id, and each renders again only when its own document
/// changed, so a remote change costs one item's render, not the list's.
/// </para>
/// <para>
/// It renders a <c>&lt;ul&gt;</c> of <c>&lt;li&gt;</c>; attributes not declared here (an <c>aria-label</c>, a
/// <c>class</c>) go on the list.
/// </para>
/// </remarks>
/// <typeparam name="TItem">The collection's document type.</typeparam>
public partial class LiveCollection<TItem> : ComponentBase, IDisposable
{
    private readonly List<Document<TItem>> _items = [];
    private readonly Dictionary<string, Document<TItem>> _byId = new(StringComparer.Ordinal);
    private DocumentCollection<TItem>? _subscribed;
    private IComparer<Document<TItem>> _order = ById.Instance;

    /// <summary>Gets or sets the collection shown.</summary>
    [Parameter]
    [EditorRequired]
    public DocumentCollection<TItem> Collection { get; set; } = null!;

    /// <summary>Gets or sets how each document is shown.</summary>
    [Parameter]
    [EditorRequired]
    public RenderFragment<Document<TItem>> ItemTemplate { get; set; } = null!;

    /// <summary>Gets or sets what is shown when the collection has no documents.</summary>
    [Parameter]
    public RenderFragment? EmptyContent { get; set; }

    /// <summary>Gets or sets the query of the first read, such as <c>q =&gt; q.Where("done", false)</c>; by default every document.</summary>
    /// <remarks>Changes that arrive later are kept or left out by <see cref="Filter"/>, so give both when filtering.</remarks>
    [Parameter]
    public Func<DocumentQuery<TItem>, DocumentQuery<TItem>>? Query { get; set; }

    /// <summary>Gets or sets which documents the list keeps as they change; by default all.</summary>
    [Parameter]
    public Func<Document<TItem>, bool>? Filter { get; set; }

    /// <summary>Gets or sets the order of the list; by default by id (ordinal), the query's own default order.</summary>
    [Parameter]
    public IComparer<Document<TItem>>? Order { get; set; }

    /// <summary>Gets or sets further attributes of the list element, such as an <c>aria-label</c>.</summary>
    [Parameter(CaptureUnmatchedValues = true)]
    public IReadOnlyDictionary<string, object>? AdditionalAttributes { get; set; }

    /// <summary>Gets the documents shown, in order.</summary>
    public IReadOnlyList<Document<TItem>> Items => _items;

    /// <inheritdoc />
    protected override async Task OnParametersSetAsync()
    {
        ArgumentNullException.ThrowIfNull(Collection);
        ArgumentNullException.ThrowIfNull(ItemTemplate);
        _order = Order ?? ById.Instance;
        if (!ReferenceEquals(_subscribed, Collection))
        {
            Unsubscribe();
            _subscribed = Collection;

            // Subscribed before the read, so no change falls between; a change the read already holds applies again harmlessly.
            Collection.Changed += OnChanged;
            await LoadAsync();
        }
    }

    /// <summary>Stops following the collection.</summary>
    public void Dispose()
    {
        Unsubscribe();
        GC.SuppressFinalize(this);
    }

    private void Unsubscribe()
    {
        if (_subscribed is { } collection)
        {
            collection.Changed -= OnChanged;
            _subscribed = null;
        }
    }

    private async Task LoadAsync()
    {
        var query = Collection.Query();
        if (Query is { } refine)
        {
            query = refine(query);
        }

        _items.Clear();
        _byId.Clear();
        var page = await query.ToPageAsync();
        while (true)
        {
            foreach (var document in page.Items)
            {
                if (Filter is null || Filter(document))
                {
                    _byId[document.Id] = document;
                    _items.Add(document);
                }
            }

            if (page.ContinuationToken is not { } token)
            {
                break;
            }

            page = await query.After(token).ToPageAsync();
        }

        if (Order is not null)
        {
            _items.Sort(_order);
        }
    }

    // Raised on the thread that committed the change; applied on the renderer's.
    private void OnChanged(object? sender, DocumentChangedEventArgs<TItem> e)
    {
        var document = e.Kind == ChangeKind.Delete || e.Json is null ? null : new Document<TItem>(e.Id, e.Value!);
        _ = InvokeAsync(() =>
        {
            if (_subscribed is not null && Apply(e.Id, document))
            {
                StateHasChanged();
            }
        });
    }

    /// <summary>Puts a document's new value in its place, or takes it out; returns whether the list changed.</summary>
    internal bool Apply(string id, Document<TItem>? document)
    {
        if (document is not null && Filter is { } filter && !filter(document))
        {
            document = null;
        }

        if (_byId.Remove(id, out var old))
        {
            _items.RemoveAt(IndexOf(old));
        }
        else if (document is null)
        {
            return false;
        }

        if (document is not null)
        {
            _byId[id] = document;
            var at = _items.BinarySearch(document, _order);
            _items.Insert(at < 0 ? ~at : at, document);
        }

        return true;
    }

    private RenderFragment RenderItem(Document<TItem> document) => builder =>
    {
        builder.OpenComponent<LiveItem<TItem>>(0);
        builder.AddComponentParameter(1, nameof(LiveItem<TItem>.Document), document);
        builder.AddComponentParameter(2, nameof(LiveItem<TItem>.Template), ItemTemplate);
        builder.CloseComponent();
    };

    private int IndexOf(Document<TItem> document)
    {
        var at = _items.BinarySearch(document, _order);
        return at >= 0 && ReferenceEquals(_items[at], document) ? at : _items.IndexOf(document);
    }

    private sealed class ById : IComparer<Document<TItem>>
    {
        public static readonly ById Instance = new();

        public int Compare(Document<TItem>? x, Document<TItem>? y) => string.CompareOrdinal(x?.Id, y?.Id);
    }
}
