using System.Globalization;
using System.Text.Json;
using Converge.Client;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Components;

namespace Converge.Components;

/// <summary>The open conflicts of a client's inbox as a queue a person works through, field by field.</summary>
/// <remarks>
/// <para>
/// For each conflict it shows every conflicting field's base value, this device's side ("Mine", the write that met
/// the conflict) and the server's ("Theirs"), each with when and on which device it was written, and lets the person
/// keep one side per field or type a value (plain text for a text field, JSON for any other, checked before it is
/// taken). A resolution is a local write through <see cref="ConflictInbox.ResolveAsync(string, ConflictChoice, CancellationToken)"/>
/// and syncs like any other.
/// </para>
/// <para>
/// The queue follows <see cref="ConflictInbox.Changed"/>: a conflict resolved here or on another device leaves it
/// while the person looks at another. Every control is a native input or button with a label, so the resolver works
/// from the keyboard and with a screen reader.
/// </para>
/// </remarks>
public partial class ConflictResolver : ComponentBase, IDisposable
{
    private static int s_instances;
    private readonly string _id = "converge-resolver-" + Interlocked.Increment(ref s_instances).ToString(CultureInfo.InvariantCulture);
    private List<InboxConflict> _queue = [];
    private readonly Dictionary<string, ConflictDraft> _drafts = new(StringComparer.Ordinal);
    private ConvergeClient? _subscribed;
    private int _index;
    private string? _error;
    private bool _busy;
    private int _refreshing;

    /// <summary>Gets or sets the client whose conflicts are resolved.</summary>
    [Parameter]
    [EditorRequired]
    public ConvergeClient Client { get; set; } = null!;

    /// <summary>Gets or sets the section's heading.</summary>
    /// <value>The default is "Conflicts".</value>
    [Parameter]
    public string Title { get; set; } = "Conflicts";

    /// <summary>Gets or sets how a device is named from its client id (16 hex digits); by default "this device" for the client's own id and the id otherwise.</summary>
    [Parameter]
    public Func<string, string>? DeviceName { get; set; }

    /// <summary>Gets or sets how a write's time is shown; by default the local date and time.</summary>
    [Parameter]
    public Func<DateTimeOffset, string>? TimeFormat { get; set; }

    /// <summary>Gets or sets a callback invoked after a conflict is resolved here, with the conflict.</summary>
    [Parameter]
    public EventCallback<InboxConflict> OnResolved { get; set; }

    /// <summary>Gets or sets further attributes of the section element, such as a <c>class</c>.</summary>
    [Parameter(CaptureUnmatchedValues = true)]
    public IReadOnlyDictionary<string, object>? AdditionalAttributes { get; set; }

    /// <summary>Gets the open conflicts in the queue, in the inbox's order.</summary>
    public IReadOnlyList<InboxConflict> Queue => _queue;

    /// <summary>Gets the conflict shown, or <see langword="null"/> when the queue is empty.</summary>
    public InboxConflict? Shown => Current?.Conflict;

    private ConflictDraft? Current => _queue.Count == 0 ? null : Draft(_queue[_index]);

    /// <inheritdoc />
    protected override async Task OnParametersSetAsync()
    {
        ArgumentNullException.ThrowIfNull(Client);
        if (!ReferenceEquals(_subscribed, Client))
        {
            Unsubscribe();
            _subscribed = Client;
            Client.Conflicts.Changed += OnConflictsChanged;
            await LoadAsync();
        }
    }

    /// <summary>Stops following the client's inbox.</summary>
    public void Dispose()
    {
        Unsubscribe();
        GC.SuppressFinalize(this);
    }

    private void Unsubscribe()
    {
        if (_subscribed is { } client)
        {
            client.Conflicts.Changed -= OnConflictsChanged;
            _subscribed = null;
        }
    }

    // Raised on the client's threads; a burst (a pulled page of conflicts) makes one read and one render.
    private void OnConflictsChanged(object? sender, ConflictChangedEventArgs e)
    {
        if (Interlocked.Exchange(ref _refreshing, 1) == 1)
        {
            return;
        }

        _ = InvokeAsync(async () =>
        {
            Volatile.Write(ref _refreshing, 0);
            if (_subscribed is null)
            {
                return;
            }

            await LoadAsync();
            StateHasChanged();
        });
    }

    /// <summary>Reads the open conflicts, keeping the one shown when it is still open.</summary>
    private async Task LoadAsync()
    {
        var shown = _queue.Count == 0 ? null : _queue[_index].Id;
        IReadOnlyList<InboxConflict> all;
        try
        {
            all = await Client.Conflicts.ListAsync();
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        _queue = [.. all.Where(c => c.Status == InboxConflictStatus.Open)];
        var ids = _queue.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _drafts.Keys.Where(k => !ids.Contains(k)).ToList())
        {
            _drafts.Remove(gone);
        }

        var at = shown is null ? -1 : _queue.FindIndex(c => c.Id == shown);
        if (at >= 0)
        {
            _index = at;
        }
        else
        {
            // The conflict shown left the queue (resolved here or elsewhere): the next one takes its place.
            _error = null;
            _index = Math.Clamp(_index, 0, Math.Max(0, _queue.Count - 1));
        }
    }

    private ConflictDraft Draft(InboxConflict conflict)
    {
        if (!_drafts.TryGetValue(conflict.Id, out var draft) || !ReferenceEquals(draft.Conflict.Record, conflict.Record))
        {
            draft = new ConflictDraft(conflict);
            _drafts[conflict.Id] = draft;
        }

        return draft;
    }

    private void Choose(string field, FieldChoice choice)
    {
        Current?.Choose(field, choice);
        _error = null;
    }

    private void Previous()
    {
        if (_index > 0)
        {
            _index--;
            _error = null;
        }
    }

    private void Next()
    {
        if (_index < _queue.Count - 1)
        {
            _index++;
            _error = null;
        }
    }

    private async Task ResolveAsync()
    {
        if (Current is not { } draft)
        {
            return;
        }

        if (!draft.TryBuild(out var choice, out var edited, out var error))
        {
            _error = error;
            return;
        }

        await RunAsync(async () =>
        {
            if (choice is { } one)
            {
                await Client.Conflicts.ResolveAsync(draft.Conflict.Id, one);
            }
            else
            {
                await Client.Conflicts.ResolveAsync(draft.Conflict.Id, edited!);
            }

            await OnResolved.InvokeAsync(draft.Conflict);
        });
    }

    private Task KeepTheirsForAllAsync() => ResolveAllAsync(ConflictChoice.Theirs);

    private Task KeepMineForAllAsync() => ResolveAllAsync(ConflictChoice.Mine);

    private Task ResolveAllAsync(ConflictChoice choice) => RunAsync(async () =>
    {
        foreach (var conflict in _queue.ToList())
        {
            try
            {
                await Client.Conflicts.ResolveAsync(conflict.Id, choice);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                // Resolved meanwhile, here or on another device: nothing left to do for it.
                continue;
            }

            await OnResolved.InvokeAsync(conflict);
        }
    });

    /// <summary>Runs a resolution with the buttons disabled, shows why it failed, and reads the queue again.</summary>
    private async Task RunAsync(Func<Task> resolve)
    {
        _busy = true;
        _error = null;
        try
        {
            await resolve();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            _error = e.Message;
        }
        finally
        {
            _busy = false;
        }

        await LoadAsync();
    }

    private static string FormatBase(ConflictField field) => field.Base is { } value ? Describe(value) : "(not known)";

    private static string FormatValue(FieldState side) => side.Removed ? "(removed)" : Describe(side.Value);

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!,
        JsonValueKind.Undefined => "(none)",
        _ => value.GetRawText(),
    };

    private static string Changed(ConflictField field, FieldState side)
    {
        if (field.Base is not { } baseValue)
        {
            return "true";
        }

        var same = !side.Removed && JsonElement.DeepEquals(baseValue, side.Value);
        return same ? "false" : "true";
    }

    private string FormatOrigin(FieldState side)
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(side.Hlc.Physical);
        var when = TimeFormat is { } format ? format(time) : time.ToLocalTime().ToString("g", CultureInfo.CurrentCulture);
        var writer = ReplicaId.Format(side.Writer);
        var device = DeviceName is { } name ? name(writer) : writer == Client.ClientId ? "this device" : writer;
        return $"{when} on {device}";
    }
}
