using System.Buffers;
using System.Net.WebSockets;

namespace Converge.WebSockets;

/// <summary>Receives one whole WebSocket message into a pooled buffer, within a bound.</summary>
/// <remarks>
/// A linked file, compiled into the client. The server reads with its own <c>LiveMessageReader</c>, which adds what a
/// server owes other tenants: bytes-in-flight budgets, and a per-message timeout that frees the buffer of a stalled message.
/// </remarks>
internal static class WholeMessage
{
    /// <summary>Receives the next message whole.</summary>
    /// <param name="socket">The socket.</param>
    /// <param name="initialBytes">The first buffer's size; it doubles as the message grows.</param>
    /// <param name="maxBytes">The largest message accepted.</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    /// <returns>
    /// The message in a buffer rented from <see cref="ArrayPool{T}.Shared"/> (the caller returns it), or no buffer: when
    /// the peer closed, or, with <c>TooLarge</c>, when the message outgrew <paramref name="maxBytes"/>.
    /// </returns>
    public static async Task<(byte[]? Buffer, int Length, bool TooLarge)> ReceiveAsync(WebSocket socket, int initialBytes, int maxBytes, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(initialBytes);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var result = await socket.ReceiveAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (null, 0, false);
                }

                length += result.Count;
                if (length > maxBytes)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (null, 0, true);
                }

                if (result.EndOfMessage)
                {
                    return (buffer, length, false);
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }
}
