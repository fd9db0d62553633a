using System.Net.WebSockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Live;

/// <summary>One live WebSocket's sending side: a bounded queue of messages to send, and one sender. <see cref="LiveMessageReader"/> receives.</summary>
/// <remarks>
/// <para>
/// Changes wait in the queue until the socket takes them. When a client reads slower than its scopes change, the queue
/// reaches <see cref="ConvergeServerOptions.LiveSendQueueBytes"/>: the scope's waiting and further changes are dropped,
/// and one <c>poke</c> takes their place, so the client pulls what it missed. Memory per connection stays bounded
/// whatever the client does.
/// </para>
/// <para>
/// Answers to the client's own requests are never dropped; a client that keeps sending pushes without reading their
/// answers is disconnected instead.
/// </para>
/// </remarks>
internal sealed class LiveConnection
{
    private readonly WebSocket _socket;
    private readonly Channel<Outgoing> _queue = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _lock = new();
    private readonly int _budget;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _logger;
    private HashSet<string>? _lagging;
    private long _queued;

    public LiveConnection(WebSocket socket, IReadOnlyList<string> scopes, string principal, int budget, ServerMetrics metrics, ILogger logger)
    {
        _socket = socket;
        Scopes = scopes;
        Principal = principal;
        _budget = budget;
        _metrics = metrics;
        _logger = logger;
    }

    public IReadOnlyList<string> Scopes { get; }

    public string Principal { get; }

    /// <summary>Gets the bytes waiting to be sent.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queued);

    /// <summary>Queues a change message of a scope, or, past the budget, drops the scope's changes until a poke is sent.</summary>
    public void Send(string scope, byte[] frame)
    {
        lock (_lock)
        {
            if (_lagging?.Contains(scope) == true)
            {
                // A poke for this scope waits in the queue: the client will pull this change too.
                return;
            }

            if (Interlocked.Read(ref _queued) + frame.Length > _budget)
            {
                (_lagging ??= new HashSet<string>(StringComparer.Ordinal)).Add(scope);
                _metrics.LivePokes.Add(1);
                Log.LiveClientLagging(_logger, LogText.Sanitize(Principal), scope, Interlocked.Read(ref _queued));
                _queue.Writer.TryWrite(new Outgoing(scope, null));
                return;
            }

            Interlocked.Add(ref _queued, frame.Length);
        }

        _queue.Writer.TryWrite(new Outgoing(scope, frame));
    }

    /// <summary>Queues an answer to the client; returns false when the client does not read its answers (the connection should close).</summary>
    public bool Answer(byte[] frame)
    {
        if (Interlocked.Add(ref _queued, frame.Length) > 2L * _budget)
        {
            Interlocked.Add(ref _queued, -frame.Length);
            return false;
        }

        return _queue.Writer.TryWrite(new Outgoing(null, frame));
    }

    /// <summary>Ends the queue: the sender sends what waits, then stops.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    /// <summary>Sends queued messages until the queue is completed or the socket fails.</summary>
    public async Task SendLoopAsync(CancellationToken cancellationToken)
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                byte[] frame;
                if (item.Frame is null)
                {
                    // The poke that replaces the scope's dropped changes; from here its changes are queued again.
                    lock (_lock)
                    {
                        _lagging!.Remove(item.Scope!);
                    }

                    frame = LiveFrames.Poke(item.Scope!);
                }
                else
                {
                    Interlocked.Add(ref _queued, -item.Frame.Length);
                    if (item.Scope is { } scope && IsLagging(scope))
                    {
                        continue;
                    }

                    frame = item.Frame;
                }

                await _socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private bool IsLagging(string scope)
    {
        lock (_lock)
        {
            return _lagging?.Contains(scope) == true;
        }
    }

    /// <summary>A queued message: a scope's change (dropped while the scope lags), a poke (no frame), or an answer (no scope).</summary>
    private readonly record struct Outgoing(string? Scope, byte[]? Frame);
}
