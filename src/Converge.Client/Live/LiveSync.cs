using System.Threading.Channels;
using Converge.Client.Live;
using Converge.Client.Sync;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Client;

/// <summary>
/// The live connection of a <see cref="ConvergeClient"/>: while started and online, changes of other devices arrive as
/// they commit and local writes are pushed at once.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Start"/> connects a WebSocket to the server and keeps it up: after each connect it pushes the outbox and
/// pulls every scope from its cursor (so nothing committed while away is missed), then applies each change the server
/// streams, raising the same change events as a pull, with <see cref="ChangeOrigin.Remote"/>. Local writes are pushed
/// over the same socket as soon as they commit; writes made while a push is out go together in the next one.
/// </para>
/// <para>
/// A lost connection is made again with jittered exponential backoff (<see cref="ConvergeClientOptions.LiveReconnectDelay"/>
/// to <see cref="ConvergeClientOptions.LiveMaxReconnectDelay"/>); a silent one is noticed within
/// <see cref="ConvergeClientOptions.LiveHeartbeatTimeout"/>. Local writes never wait for the connection.
/// The periodic sync work (<c>ScheduleDataSyncAsync</c>, in the Converge.Client.Work package) stays the safety net for
/// when the app is not running.
/// </para>
/// </remarks>
public sealed class LiveSync
{
    private readonly ConvergeClient _client;
    private readonly SyncEngine _engine;
    private readonly SyncHttp? _http;
    private readonly HttpMessageHandler? _handler;
    private readonly TimeSpan _requestTimeout;
    private readonly TimeSpan _heartbeatTimeout;
    private readonly TimeSpan _reconnectDelay;
    private readonly TimeSpan _maxReconnectDelay;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly List<(LiveStatus Status, TaskCompletionSource Reached)> _waiters = [];
    private CancellationTokenSource? _stop;
    private Task _run = Task.CompletedTask;
    private LiveStatus _status = LiveStatus.Stopped;
    private Exception? _lastError;
    private int _outboxDirty;

    internal LiveSync(ConvergeClient client, SyncEngine engine, SyncHttp? http, ConvergeClientOptions options, ILogger logger)
    {
        _client = client;
        _engine = engine;
        _http = http;
        _handler = options.HttpMessageHandler;
        _requestTimeout = options.RequestTimeout;
        _heartbeatTimeout = options.LiveHeartbeatTimeout;
        _reconnectDelay = options.LiveReconnectDelay;
        _maxReconnectDelay = options.LiveMaxReconnectDelay;
        _time = options.TimeProvider;
        _logger = logger;
    }

    /// <summary>Raised when <see cref="Status"/> changes, on the connection's own task.</summary>
    public event EventHandler<LiveStatusChangedEventArgs>? StatusChanged;

    /// <summary>Gets the state of the connection.</summary>
    public LiveStatus Status
    {
        get
        {
            lock (_lock)
            {
                return _status;
            }
        }
    }

    /// <summary>Gets why the connection was last lost or refused; <see langword="null"/> once it is live again.</summary>
    public Exception? LastError
    {
        get
        {
            lock (_lock)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Starts keeping the live connection up, in the background; does nothing when it is started already.</summary>
    /// <exception cref="InvalidOperationException">The client has no <see cref="ConvergeClientOptions.ServerUrl"/>.</exception>
    /// <exception cref="ObjectDisposedException">The client is disposed.</exception>
    public void Start()
    {
        _client.CheckCanSync();
        LiveStatusChangedEventArgs? args;
        lock (_lock)
        {
            if (_stop is not null)
            {
                return;
            }

            _stop = new CancellationTokenSource();
            var token = _stop.Token;
            _client.Writes.OutboxGrew = OnOutboxGrew;
            args = SetStatusLocked(LiveStatus.Connecting, null);
            _run = Task.Run(() => RunAsync(token), CancellationToken.None);
        }

        Raise(args);
    }

    /// <summary>Closes the connection and stops making it again; local writes then wait for a sync round. Does nothing when stopped.</summary>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async Task StopAsync()
    {
        CancellationTokenSource? stop;
        Task run;
        lock (_lock)
        {
            stop = _stop;
            _stop = null;
            run = _run;
        }

        if (stop is null)
        {
            return;
        }

        _client.Writes.OutboxGrew = null;
        await stop.CancelAsync().ConfigureAwait(false);
        await run.ConfigureAwait(false);
        stop.Dispose();
        SetStatus(LiveStatus.Stopped, null);
    }

    /// <summary>Waits until <see cref="Status"/> is <paramref name="status"/>.</summary>
    /// <param name="status">The status to wait for.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when the status is reached (at once when it is the status now).</returns>
    public Task WaitForStatusAsync(LiveStatus status, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_status == status)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((status, reached));
            return reached.Task.WaitAsync(cancellationToken);
        }
    }

    private void OnOutboxGrew()
    {
        Volatile.Write(ref _outboxDirty, 1);
        _wake.Writer.TryWrite(true);
    }

    private void Wake() => _wake.Writer.TryWrite(true);

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            SetStatus(LiveStatus.Connecting, LastError);
            Exception? error = null;
            try
            {
                var socket = await ConnectAsync(cancellationToken).ConfigureAwait(false);
                await using (socket.ConfigureAwait(false))
                {
                    // Caught up before live: the outbox pushed, every scope pulled from its cursor. Changes committed
                    // from "ready" on wait in the socket, and those the pull brought already are skipped.
                    Volatile.Write(ref _outboxDirty, 0);
                    await _client.SyncAsync(null, cancellationToken).ConfigureAwait(false);
                    failures = 0;
                    SetStatus(LiveStatus.Live, null);
                    Log.LiveConnected(_logger);
                    await ServeAsync(socket, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                error = e;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            var delay = Backoff(failures++);
            SetStatus(LiveStatus.Offline, error);
            Log.LiveLost(_logger, error, delay);
            try
            {
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Opens the live channel for the client's scopes, with its access token.</summary>
    private async Task<LiveSocket> ConnectAsync(CancellationToken cancellationToken)
    {
        _client.CheckCanSync();
        var http = _http!;
        // The base address ends with "v1/", the channel's version.
        var builder = new UriBuilder(new Uri(http.BaseAddress, "live"))
        {
            Scheme = http.BaseAddress.Scheme == Uri.UriSchemeHttps ? "wss" : "ws",
            Query = string.Join('&', _client.Scopes.Select(s => LiveProtocol.ScopeParameter + "=" + Uri.EscapeDataString(s))),
        };
        var token = await http.TokenAsync(cancellationToken).ConfigureAwait(false);
        var timeout = _requestTimeout == Timeout.InfiniteTimeSpan || _requestTimeout > TimeSpan.FromSeconds(15) ? TimeSpan.FromSeconds(15) : _requestTimeout;
        return await LiveSocket.ConnectAsync(builder.Uri, token, _handler, _heartbeatTimeout, timeout, Wake, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies what the socket brings and pushes what the app writes, until the socket ends.</summary>
    private async Task ServeAsync(LiveSocket socket, CancellationToken cancellationToken)
    {
        while (true)
        {
            while (socket.TryTake(out var notice))
            {
                using (notice)
                {
                    await _engine.ApplyLiveAsync(notice, cancellationToken).ConfigureAwait(false);
                }
            }

            if (socket.TakeMissed() is { } missed)
            {
                foreach (var scope in missed)
                {
                    await _engine.PullLiveAsync(scope, cancellationToken).ConfigureAwait(false);
                }
            }

            if (socket.Ended is { } ended)
            {
                throw ended;
            }

            if (Interlocked.Exchange(ref _outboxDirty, 0) == 1)
            {
                await _engine.PushLiveAsync(socket.PushAsync, cancellationToken).ConfigureAwait(false);
                continue;
            }

            await _wake.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The delay before the next attempt: exponential from the first delay to the maximum, with "equal jitter" (half fixed, half random) so that clients of a restarted server do not all come back at once.</summary>
    private TimeSpan Backoff(int failures)
    {
        var first = _reconnectDelay;
        var max = _maxReconnectDelay;
        var ceiling = Math.Min(max.TotalMilliseconds, first.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30)));
        return TimeSpan.FromMilliseconds((ceiling / 2) + (Random.Shared.NextDouble() * ceiling / 2));
    }

    private void SetStatus(LiveStatus status, Exception? error)
    {
        LiveStatusChangedEventArgs? args;
        lock (_lock)
        {
            args = SetStatusLocked(status, error);
        }

        Raise(args);
    }

    private LiveStatusChangedEventArgs? SetStatusLocked(LiveStatus status, Exception? error)
    {
        var previous = _status;
        _status = status;
        _lastError = error;
        var changed = previous != status;
        for (var i = _waiters.Count - 1; i >= 0; i--)
        {
            if (_waiters[i].Status == status)
            {
                _waiters[i].Reached.TrySetResult();
                _waiters.RemoveAt(i);
            }
        }

        return changed ? new LiveStatusChangedEventArgs(previous, status, error) : null;
    }

    private void Raise(LiveStatusChangedEventArgs? args)
    {
        if (args is null)
        {
            return;
        }

        Log.LiveStatusChanged(_logger, args.Previous, args.Status);
        Events.Raise(StatusChanged, this, args, _logger);
    }
}
