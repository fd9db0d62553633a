using System.Globalization;
using Converge.Client;
using Microsoft.AspNetCore.Components;

namespace Converge.Components;

/// <summary>Shows where a client's sync stands: a state word, the local writes waiting for the server, the open conflicts and the last successful sync.</summary>
/// <remarks>
/// <para>
/// Two words tell where things stand: the connection (Offline, Connecting or Live; none when the app does not use live
/// sync and has not lost the network) and the data (Syncing, Up to date, or Error with the error's message; none while
/// writes wait or the device is offline, when the pending count says it). A live device with nothing left to send shows
/// "Live" and "Up to date" together. They
/// follows the client's events (<see cref="ConvergeClient.StatusChanged"/>, <see cref="LiveSync.StatusChanged"/>,
/// <see cref="ConvergeClient.PendingChanged"/>, <see cref="ConvergeClient.Synced"/> and
/// <see cref="ConflictInbox.Changed"/>) and never polls.
/// </para>
/// <para>
/// The component renders an element with <c>role="status"</c> named "Sync status", so screen readers announce changes
/// politely. The client does not know whether the device has a network; an app that does (a switch, or MAUI's
/// <c>Connectivity</c>) sets <see cref="Offline"/>.
/// </para>
/// </remarks>
public partial class SyncStatus : ComponentBase, IDisposable
{
    private ConvergeClient? _subscribed;
    private long _pending;
    private int _conflicts;
    private DateTimeOffset? _lastSynced;
    private int _refreshing;

    /// <summary>Gets or sets the client whose sync is shown.</summary>
    [Parameter]
    [EditorRequired]
    public ConvergeClient Client { get; set; } = null!;

    /// <summary>Gets or sets whether the app knows the device is offline; the state word is then Offline whatever the client last saw.</summary>
    [Parameter]
    public bool Offline { get; set; }

    /// <summary>Gets or sets how the last sync's time is shown; by default the local time of day (or date and time when not today).</summary>
    [Parameter]
    public Func<DateTimeOffset, string>? TimeFormat { get; set; }

    /// <summary>Gets or sets the clock that tells whether the last sync was today; by default the system's.</summary>
    [Parameter]
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>Gets or sets further attributes of the status element, such as a <c>class</c>.</summary>
    [Parameter(CaptureUnmatchedValues = true)]
    public IReadOnlyDictionary<string, object>? AdditionalAttributes { get; set; }

    /// <summary>Gets the connection word shown: Offline, Connecting or Live; <see langword="null"/> when live sync is not in use and the device is not known to be offline.</summary>
    public string? ConnectionWord => Offline
        ? "Offline"
        : Client.Live.Status switch
        {
            LiveStatus.Live => "Live",
            LiveStatus.Connecting => "Connecting",
            LiveStatus.Offline => "Offline",
            _ => Client.Status == Converge.Client.SyncStatus.Offline ? "Offline" : null,
        };

    /// <summary>Gets the data word shown: Syncing, Up to date or Error; <see langword="null"/> while writes wait to be sent or the device is offline.</summary>
    public string? StateWord => Offline
        ? null
        : Client.Status switch
        {
            Converge.Client.SyncStatus.Error => "Error",
            Converge.Client.SyncStatus.Syncing => "Syncing",
            Converge.Client.SyncStatus.UpToDate when _pending == 0 => "Up to date",
            _ => null,
        };

    private string StateClass => State.ToString().ToLowerInvariant();

    private string? ErrorMessage => State == SyncState.Error ? (Client.LastError ?? Client.Live.LastError)?.Message : null;

    /// <summary>Gets the state the status shows, from the client's sync status, its live connection and the pending writes.</summary>
    internal SyncState State
    {
        get
        {
            if (Offline)
            {
                return SyncState.Offline;
            }

            var live = Client.Live.Status;
            switch (Client.Status)
            {
                case Converge.Client.SyncStatus.Error:
                    return SyncState.Error;
                case Converge.Client.SyncStatus.Syncing:
                    return SyncState.Syncing;
                default:
                    break;
            }

            // Live: connected, and writes still going out; up to date: connected, or the last round succeeded, with
            // nothing left to send.
            return live switch
            {
                LiveStatus.Connecting => SyncState.Connecting,
                LiveStatus.Offline => SyncState.Offline,
                LiveStatus.Live => _pending > 0 ? SyncState.Live : SyncState.UpToDate,
                _ => Client.Status == Converge.Client.SyncStatus.UpToDate && _pending == 0 ? SyncState.UpToDate : SyncState.Offline,
            };
        }
    }

    /// <inheritdoc />
    protected override void OnParametersSet()
    {
        ArgumentNullException.ThrowIfNull(Client);
        if (!ReferenceEquals(_subscribed, Client))
        {
            Unsubscribe();
            _subscribed = Client;
            Client.StatusChanged += OnClientEvent;
            Client.PendingChanged += OnClientEvent;
            Client.Synced += OnClientEvent;
            Client.Live.StatusChanged += OnClientEvent;
            Client.Conflicts.Changed += OnClientEvent;
            Read();
        }
    }

    /// <summary>Stops following the client.</summary>
    public void Dispose()
    {
        Unsubscribe();
        GC.SuppressFinalize(this);
    }

    private void Unsubscribe()
    {
        if (_subscribed is { } client)
        {
            client.StatusChanged -= OnClientEvent;
            client.PendingChanged -= OnClientEvent;
            client.Synced -= OnClientEvent;
            client.Live.StatusChanged -= OnClientEvent;
            client.Conflicts.Changed -= OnClientEvent;
            _subscribed = null;
        }
    }

    // Raised on the client's threads; a burst of events (a pulled page of changes) makes one read and one render.
    private void OnClientEvent(object? sender, EventArgs e)
    {
        if (Interlocked.Exchange(ref _refreshing, 1) == 1)
        {
            return;
        }

        _ = InvokeAsync(() =>
        {
            Volatile.Write(ref _refreshing, 0);
            if (_subscribed is null)
            {
                return;
            }

            Read();
            StateHasChanged();
        });
    }

    private void Read()
    {
        try
        {
            _pending = Client.GetPendingCountAsync().GetAwaiter().GetResult();
            _conflicts = Client.Conflicts.ListAsync().GetAwaiter().GetResult().Count(c => c.Status == InboxConflictStatus.Open);
            _lastSynced = Client.LastSyncedAt;
        }
        catch (ObjectDisposedException)
        {
            // The app closed the client; the last values stay on screen.
        }
    }

    private string FormatTime(DateTimeOffset time)
    {
        if (TimeFormat is { } format)
        {
            return format(time);
        }

        var local = time.ToLocalTime();
        return local.Date == (TimeProvider ?? TimeProvider.System).GetLocalNow().Date
            ? local.ToString("T", CultureInfo.CurrentCulture)
            : local.ToString("g", CultureInfo.CurrentCulture);
    }
}

/// <summary>The states <see cref="SyncStatus"/> shows.</summary>
internal enum SyncState
{
    Offline,
    Connecting,
    Live,
    Syncing,
    UpToDate,
    Error,
}
