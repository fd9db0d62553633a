using Converge.Client.Live;
using Converge.Client.Storage;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Client.Sync;

/// <summary>
/// Runs a client's sync: rounds (push the outbox, pull every scope) and the live channel's steps, one at a time, and
/// keeps the sync status they leave.
/// </summary>
internal sealed class SyncEngine
{
    private readonly ConvergeClient _client;
    private readonly ClientIdentity _identity;
    private readonly SyncHttp? _http;
    private readonly OutboxPusher _push;
    private readonly ScopePuller _pull;
    private readonly PageApplier _pages;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Held by the round or live step that runs, so that they never overlap.</summary>
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly Lock _statusLock = new();
    private SyncStatus _status = SyncStatus.Offline;
    private Exception? _lastError;

    public SyncEngine(ConvergeClient client, ClientIdentity identity, SyncHttp? http, OutboxPusher push, ScopePuller pull, PageApplier pages, TimeProvider time, ILogger logger)
    {
        _client = client;
        _identity = identity;
        _http = http;
        _push = push;
        _pull = pull;
        _pages = pages;
        _time = time;
        _logger = logger;
    }

    /// <summary>Raised when <see cref="Status"/> changes, with the client as sender.</summary>
    public event EventHandler<SyncStatusChangedEventArgs>? StatusChanged;

    public SyncStatus Status
    {
        get
        {
            lock (_statusLock)
            {
                return _status;
            }
        }
    }

    public Exception? LastError
    {
        get
        {
            lock (_statusLock)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Runs one sync round: pushes the outbox, then pulls every scope to the end (see <see cref="ConvergeClient.SyncAsync"/>).</summary>
    public async Task<SyncReport> SyncAsync(IProgress<SyncProgress>? progress, CancellationToken cancellationToken)
    {
        var http = _http ?? throw new InvalidOperationException("This client has no ServerUrl: it works locally only.");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closing.Token);
        var token = linked.Token;
        await _gate.WaitAsync(token).ConfigureAwait(false);
        try
        {
            var previous = Status;
            var previousError = LastError;
            SetStatus(SyncStatus.Syncing, previousError);
            Log.SyncStarted(_logger);
            var started = _time.GetTimestamp();
            var round = new SyncRound(progress);
            try
            {
                await _push.PushAsync(http.PushAsync, round, token).ConfigureAwait(false);
                foreach (var scope in _client.Scopes)
                {
                    try
                    {
                        await _pull.PullAsync(http, scope, round, token).ConfigureAwait(false);
                    }
                    catch (ConvergeSyncException e) when (e.IsScopeForbidden)
                    {
                        // One scope the caller may not read must not keep the others from syncing.
                        Log.PullForbidden(_logger, scope);
                        round.Forbid(scope, e);
                    }

                    await _pages.RebuildStaleAsync(scope, token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                Log.SyncCancelled(_logger);
                SetStatus(previous, previousError);
                throw;
            }
            catch (Exception e) when (ConvergeClient.IsNetworkFailure(e))
            {
                Log.SyncOffline(_logger, e);
                SetStatus(SyncStatus.Offline, e);
                throw;
            }
            catch (Exception e)
            {
                Log.SyncFailed(_logger, e);
                SetStatus(SyncStatus.Error, e);
                throw;
            }

            var report = round.Report(_time.GetElapsedTime(started));
            Log.SyncCompleted(_logger, report.Duration, report.Pushed, report.Pulled, report.ConflictsOpened, report.ConflictsResolved, report.Rejected.Count, report.Restamped);

            // Refused scopes do not fail the round (the others synced), but the status says not everything did.
            var forbidden = round.ForbiddenError();
            SetStatus(forbidden is null ? SyncStatus.UpToDate : SyncStatus.Error, forbidden);
            if (report.Pushed > 0)
            {
                _client.RaisePendingChanged();
            }

            _client.RaiseSynced();
            return report;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Applies a live notice: a page that follows the scope's cursor is applied with it; one already held is skipped; after a gap, a poke, or another epoch, the scope is pulled.</summary>
    public async Task ApplyLiveAsync(LiveNotice notice, CancellationToken cancellationToken)
    {
        if (!_client.HasScope(notice.Scope))
        {
            throw new ConvergeSyncException($"The server's live channel sent a change of scope '{notice.Scope}', which this client does not follow.");
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (notice.Page is not { } page)
            {
                Log.LivePoked(_logger, notice.Scope);
                await PullLockedAsync(notice.Scope, cancellationToken).ConfigureAwait(false);
                return;
            }

            long cursor;
            string? epoch;
            using (var connection = _client.Store.OpenRead())
            {
                (cursor, epoch) = StoreReads.CursorAndEpoch(connection, notice.Scope);
            }

            _identity.Clock.TryReceive(page.Clock, out _);
            var sameHistory = page.Epoch is null || epoch is null || string.Equals(page.Epoch, epoch, StringComparison.Ordinal);
            if (sameHistory && notice.After == cursor && !page.Reset && !page.HasMore)
            {
                await _pages.ApplyRawAsync(notice.Scope, page.Changes, page.Conflicts, page.Cursor, false, cancellationToken, page.ConflictJson, page.Epoch).ConfigureAwait(false);
            }
            else if (sameHistory && page.Cursor <= cursor)
            {
                Log.LiveChangeHeld(_logger, notice.Scope, page.Cursor, cursor);
            }
            else
            {
                Log.LiveGap(_logger, notice.Scope, notice.After, cursor);
                await PullLockedAsync(notice.Scope, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }

        _client.RaiseSynced();
    }

    /// <summary>Pulls one scope to its end, outside any round.</summary>
    public async Task PullLiveAsync(string scope, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await PullLockedAsync(scope, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Pushes the outbox through the live channel.</summary>
    public async Task PushLiveAsync(Func<byte[], CancellationToken, Task<PushResponse>> send, CancellationToken cancellationToken)
    {
        var pushed = 0;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var round = new SyncRound(null);
            await _push.PushAsync(send, round, cancellationToken).ConfigureAwait(false);

            // A write the server answered without a new revision brings no change to apply: its document is rebuilt now.
            if (round.MarkedStale)
            {
                foreach (var scope in _client.Scopes)
                {
                    await _pages.RebuildStaleAsync(scope, cancellationToken).ConfigureAwait(false);
                }
            }

            pushed = round.Pushed;
        }
        finally
        {
            _gate.Release();
        }

        if (pushed > 0)
        {
            _client.RaisePendingChanged();
            _client.RaiseSynced();
        }
    }

    /// <summary>Cancels the round that runs, waits for it to end, and runs <paramref name="close"/> while no round can start.</summary>
    public async Task CloseAsync(Action close)
    {
        await _closing.CancelAsync().ConfigureAwait(false);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            close();
        }
        finally
        {
            _gate.Release();
            _closing.Dispose();
        }
    }

    private async Task PullLockedAsync(string scope, CancellationToken cancellationToken)
    {
        await _pull.PullAsync(_http!, scope, new SyncRound(null), cancellationToken).ConfigureAwait(false);
        await _pages.RebuildStaleAsync(scope, cancellationToken).ConfigureAwait(false);
    }

    private void SetStatus(SyncStatus status, Exception? error)
    {
        SyncStatus previous;
        lock (_statusLock)
        {
            previous = _status;
            _status = status;
            _lastError = error;
        }

        if (previous == status)
        {
            return;
        }

        Log.StatusChanged(_logger, previous, status);
        Events.Raise(StatusChanged, _client, new SyncStatusChangedEventArgs(previous, status, error), _logger);
    }
}
