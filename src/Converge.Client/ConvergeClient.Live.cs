using Converge.Client.Live;
using Converge.Client.Storage;
using Converge.Protocol.Messages;

namespace Converge.Client;

public sealed partial class ConvergeClient
{
    private readonly HttpMessageHandler? _handler;
    private readonly TimeSpan _requestTimeout;

    /// <summary>Gets the live connection: <see cref="LiveSync.Start"/> it to receive other devices' changes as they commit and push local writes at once.</summary>
    public LiveSync Live { get; }

    internal TimeProvider TimeProvider => _time;

    internal TimeSpan LiveHeartbeatTimeout { get; }

    internal TimeSpan LiveReconnectDelay { get; }

    internal TimeSpan LiveMaxReconnectDelay { get; }

    /// <summary>Throws unless the client can sync: not disposed, and with a server.</summary>
    internal void CheckCanSync()
    {
        ThrowIfDisposed();
        if (_http is null)
        {
            throw new InvalidOperationException("This client has no ServerUrl: it works locally only.");
        }
    }

    /// <summary>Opens the live channel for this client's scopes, with its access token.</summary>
    internal async Task<LiveSocket> ConnectLiveAsync(Action wake, CancellationToken cancellationToken)
    {
        CheckCanSync();
        var http = _http!;
        // The base address ends with "v1/", the channel's version.
        var builder = new UriBuilder(new Uri(http.BaseAddress, "live"))
        {
            Scheme = http.BaseAddress.Scheme == Uri.UriSchemeHttps ? "wss" : "ws",
            Query = string.Join('&', Scopes.Select(s => LiveProtocol.ScopeParameter + "=" + Uri.EscapeDataString(s))),
        };
        var token = await http.TokenAsync(cancellationToken).ConfigureAwait(false);
        var timeout = _requestTimeout == Timeout.InfiniteTimeSpan || _requestTimeout > TimeSpan.FromSeconds(15) ? TimeSpan.FromSeconds(15) : _requestTimeout;
        return await LiveSocket.ConnectAsync(builder.Uri, token, _handler, LiveHeartbeatTimeout, timeout, wake, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies a live notice: a page that follows the scope's cursor is applied with it; one already held is skipped; after a gap, a poke, or another epoch, the scope is pulled.</summary>
    internal async Task ApplyLiveAsync(LiveNotice notice, CancellationToken cancellationToken)
    {
        if (!_scopes.Contains(notice.Scope))
        {
            throw new ConvergeSyncException($"The server's live channel sent a change of scope '{notice.Scope}', which this client does not follow.");
        }

        await _syncGate.WaitAsync(cancellationToken).ConfigureAwait(false);
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
            using (var connection = Store.OpenRead())
            {
                (cursor, epoch) = StoreReads.CursorAndEpoch(connection, notice.Scope);
            }

            Clock.TryReceive(page.Clock, out _);
            var sameHistory = page.Epoch is null || epoch is null || string.Equals(page.Epoch, epoch, StringComparison.Ordinal);
            if (sameHistory && notice.After == cursor && !page.Reset && !page.HasMore)
            {
                await ApplyRawPageAsync(notice.Scope, page.Changes, page.Conflicts, page.Cursor, false, cancellationToken, page.ConflictJson, page.Epoch).ConfigureAwait(false);
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
            _syncGate.Release();
        }
    }

    /// <summary>Pulls one scope to its end, outside any round.</summary>
    internal async Task PullLiveAsync(string scope, CancellationToken cancellationToken)
    {
        await _syncGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await PullLockedAsync(scope, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _syncGate.Release();
        }
    }

    /// <summary>Pushes the outbox through the live channel.</summary>
    internal async Task PushLiveAsync(Func<byte[], CancellationToken, Task<PushResponse>> send, CancellationToken cancellationToken)
    {
        await _syncGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var round = new Round(null);
            await PushAsync(send, round, cancellationToken).ConfigureAwait(false);

            // A write the server answered without a new revision brings no change to apply: its document is rebuilt now.
            if (round.MarkedStale)
            {
                foreach (var scope in Scopes)
                {
                    await RebuildStaleAsync(scope, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _syncGate.Release();
        }
    }

    private async Task PullLockedAsync(string scope, CancellationToken cancellationToken)
    {
        await PullAsync(_http!, scope, new Round(null), cancellationToken).ConfigureAwait(false);
        await RebuildStaleAsync(scope, cancellationToken).ConfigureAwait(false);
    }
}
