using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using Converge.Protocol.Messages;
using Converge.Server.Http;

namespace Converge.Server.Live;

/// <summary>How receiving one live message ended.</summary>
internal enum LiveReceive
{
    /// <summary>A whole message is in <see cref="LiveMessageReader.Message"/>; release it once answered.</summary>
    Message,

    /// <summary>The client closed, or the message timed out (the reader already said so): stop receiving.</summary>
    Ended,

    /// <summary>The message outgrew <see cref="ConvergeServerOptions.MaxRequestBytes"/>: close with 1009.</summary>
    TooLarge,

    /// <summary>The message was refused for the bytes in flight, answered at once, and its rest dropped: receive the next.</summary>
    Refused,
}

/// <summary>
/// Receives a live connection's messages one at a time within the bounds: the message size, the bytes in flight of the
/// connection, its principal and the server, and <see cref="ConvergeServerOptions.RequestBodyTimeout"/> per message.
/// </summary>
/// <remarks>
/// <para>
/// It reads through a small chunk of its own and copies into the message's buffer, which is reserved as it grows. So
/// when a message times out, its buffer and reservation are given back at once, before the socket is closed, while a
/// read of the stalled client is still pending on the chunk; and a refused message's rest is dropped through the chunk.
/// An idle connection holds no message buffer; the chunk (4 KiB) is the connection's own cost, like Kestrel's buffers.
/// </para>
/// <para>
/// A message over budget is answered at once with an <c>error</c> 429 <c>too_many_requests</c> for its <c>request</c>,
/// read from the message's start (the reference client writes <c>request</c> before <c>push</c>), and its rest is
/// dropped as it arrives. When its start does not name the request, nothing can answer it: the connection is closed
/// (1008) with the reason.
/// </para>
/// </remarks>
internal sealed class LiveMessageReader(WebSocket socket, BodyReservation reservation, int maxBytes, TimeSpan timeout, TimeProvider time)
{
    private const int ChunkBytes = 4096;

    private readonly byte[] _chunk = new byte[ChunkBytes];
    private readonly Lock _lock = new();
    private byte[]? _buffer;
    private int _asked;
    private int _length;
    private bool _settled;

    // Which message the timer of a callback belongs to: a callback of an earlier message that runs late ends nothing.
    private long _message;

    /// <summary>Gets the message received last, valid until <see cref="ReleaseMessage"/>.</summary>
    public ReadOnlyMemory<byte> Message => _buffer.AsMemory(0, _length);

    /// <summary>Receives the next message.</summary>
    /// <param name="refused">Answers a message over budget: given its request (null when not found) and the problem; returns false to stop receiving.</param>
    /// <param name="timedOut">Closes the connection when a message does not arrive whole in time; called after its buffer was given back.</param>
    /// <param name="cancellationToken">Ends the wait (and aborts the socket).</param>
    public async Task<LiveReceive> ReceiveAsync(Func<long?, ProtocolError, bool> refused, Action timedOut, CancellationToken cancellationToken)
    {
        // An idle connection holds no buffer: the zero-byte read completes when a message starts.
        var peek = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        if (peek.MessageType == WebSocketMessageType.Close)
        {
            return LiveReceive.Ended;
        }

        long message;
        lock (_lock)
        {
            _settled = false;
            _length = 0;
            message = ++_message;
        }

        // The message's clock starts with its first byte.
        using var timer = time.CreateTimer(_ => OnTimeout(timedOut, message), null, timeout, Timeout.InfiniteTimeSpan);
        var skipping = false;
        long total = 0;
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(_chunk.AsMemory(), cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Settle();
                    return LiveReceive.Ended;
                }

                total += result.Count;
                ProtocolError? overBudget = null;
                long? request = null;
                lock (_lock)
                {
                    if (_settled)
                    {
                        // Timed out: the buffer is gone and the connection is closing.
                        return LiveReceive.Ended;
                    }

                    if (total > maxBytes)
                    {
                        SettleLocked();
                        return LiveReceive.TooLarge;
                    }

                    if (!skipping)
                    {
                        overBudget = Append(result.Count);
                        if (overBudget is not null)
                        {
                            request = RequestOf(_length > 0 ? _buffer.AsSpan(0, _length) : _chunk.AsSpan(0, result.Count));
                            ReleaseLocked();
                            skipping = true;
                        }
                    }

                    if (result.EndOfMessage)
                    {
                        // The message is whole: from here the timer does nothing.
                        _settled = true;
                        if (overBudget is null)
                        {
                            return skipping ? LiveReceive.Refused : LiveReceive.Message;
                        }
                    }
                }

                if (overBudget is not null)
                {
                    if (!refused(request, overBudget))
                    {
                        Settle();
                        return LiveReceive.Ended;
                    }

                    if (result.EndOfMessage)
                    {
                        return LiveReceive.Refused;
                    }
                }
            }
        }
        catch
        {
            Settle();
            throw;
        }
    }

    /// <summary>Gives back the buffer of the last message and its reservation.</summary>
    public void ReleaseMessage()
    {
        lock (_lock)
        {
            ReleaseLocked();
        }
    }

    /// <summary>Reads the <c>request</c> member from the start of a message, if it comes before anything it cannot skip.</summary>
    internal static long? RequestOf(ReadOnlySpan<byte> start)
    {
        var reader = new Utf8JsonReader(start, isFinalBlock: false, new JsonReaderState(new JsonReaderOptions { MaxDepth = ProtocolLimits.MaxMessageDepth + 1 }));
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isRequest = reader.ValueTextEquals("request"u8);
                if (!reader.Read())
                {
                    return null;
                }

                if (isRequest)
                {
                    return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var id) ? id : null;
                }

                if (!reader.TrySkip())
                {
                    return null;
                }
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    /// <summary>Copies the chunk's bytes into the message's buffer, growing and reserving it first; returns the refusal when the reservation is.</summary>
    private ProtocolError? Append(int count)
    {
        var needed = _length + count;
        if (needed > _asked)
        {
            // Reserved as asked, not as the pool rounds it up.
            var asked = Math.Min(Math.Max(needed, Math.Max(ChunkBytes, _asked * 2)), maxBytes);
            if (reservation.TryGrow(asked - _asked) is { } refusal)
            {
                return refusal;
            }

            var larger = ArrayPool<byte>.Shared.Rent(asked);
            if (_buffer is not null)
            {
                _buffer.AsSpan(0, _length).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = larger;
            _asked = asked;
        }

        _chunk.AsSpan(0, count).CopyTo(_buffer.AsSpan(_length));
        _length = needed;
        return null;
    }

    private void OnTimeout(Action timedOut, long message)
    {
        lock (_lock)
        {
            if (_settled || message != _message)
            {
                return;
            }

            SettleLocked();
        }

        timedOut();
    }

    private void Settle()
    {
        lock (_lock)
        {
            SettleLocked();
        }
    }

    private void SettleLocked()
    {
        _settled = true;
        ReleaseLocked();
    }

    private void ReleaseLocked()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }

        _length = 0;
        _asked = 0;
        reservation.Release();
    }
}
