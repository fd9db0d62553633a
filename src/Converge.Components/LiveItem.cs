using Converge.Client;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Rendering;

namespace Converge.Components;

/// <summary>One document of a <see cref="LiveCollection{TItem}"/>: renders again only when its document changed.</summary>
/// <remarks>
/// A <see cref="RenderFragment{TValue}"/> parameter is a delegate, which Blazor always counts as changed, so every
/// item of a list would render again whenever the list does. A changed document is a new <see cref="Document{T}"/>
/// instance, so comparing references tells exactly which item needs it.
/// </remarks>
/// <typeparam name="TItem">The document type.</typeparam>
internal sealed class LiveItem<TItem> : ComponentBase
{
    private Document<TItem>? _rendered;

    /// <summary>Gets or sets the document shown.</summary>
    [Parameter]
    public Document<TItem> Document { get; set; } = null!;

    /// <summary>Gets or sets how the document is shown.</summary>
    [Parameter]
    public RenderFragment<Document<TItem>> Template { get; set; } = null!;

    /// <summary>Gets how many times this item rendered, for tests.</summary>
    internal int Renders { get; private set; }

    protected override bool ShouldRender() => !ReferenceEquals(_rendered, Document);

    protected override void BuildRenderTree(RenderTreeBuilder builder)
    {
        _rendered = Document;
        Renders++;
        builder.AddContent(0, Template, Document);
    }
}
