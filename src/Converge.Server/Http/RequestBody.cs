using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Converge.Server.Http;

/// <summary>Reads a request body within a size bound, checks that its text is Unicode, and parses it.</summary>
internal static class RequestBody
{
    /// <summary>Parses a body.</summary>
    /// <exception cref="JsonException">The body is not valid JSON, or (<see cref="MalformedMessageException"/>) not the message.</exception>
    public delegate T? Parser<T>(ReadOnlySpan<byte> json);

    /// <summary>Reads and parses a body; on failure returns the protocol error, having written nothing.</summary>
    /// <summary>Reads a body and parses it with <paramref name="parse"/>; on failure returns the protocol error, having written nothing.</summary>
    /// <remarks>
    /// The body is read within <see cref="ConvergeServerOptions.MaxRequestBytes"/> (413), within the bytes in flight
    /// of its connection, its principal and the server (429: the buffer is reserved before it is taken, so a refused
    /// body is not read at all when its length is declared), and within
    /// <see cref="ConvergeServerOptions.RequestBodyTimeout"/> from now (408). Its buffer and reservation are given back
    /// before the answer is written.
    /// </remarks>
    public static async Task<(T? Value, ProtocolError? Error)> ReadAsync<T>(HttpContext context, RequestLimits limits, Parser<T> parse)
        where T : class
    {
        var maxBytes = limits.Options.MaxRequestBytes;
        var request = context.Request;
        if (request.ContentLength is { } declared && declared > maxBytes)
        {
            return (null, TooLarge(maxBytes));
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = maxBytes;
        }

        // The clock starts with the read: a body sent fast and then stalled keeps Kestrel's average data rate high, not this.
        using var timeout = new CancellationTokenSource(limits.Options.RequestBodyTimeout, limits.Time);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, timeout.Token);
        using var reservation = limits.Reserve(context);

        // A declared length is reserved whole before a byte is read: the buffer is that large.
        var capacity = (int)Math.Max(Math.Min(request.ContentLength ?? 16 * 1024, maxBytes), 256);
        if (reservation.TryGrow(capacity) is { } refused)
        {
            limits.Refused(context, "bytes_in_flight");
            return (null, refused);
        }

        var buffer = ArrayPool<byte>.Shared.Rent(capacity);
        try
        {
            var total = 0;
            while (true)
            {
                if (total == capacity)
                {
                    // Full: one byte tells the end of the body from more of it, so a body of the declared length never doubles its buffer.
                    var probe = new byte[1];
                    if (await ReadSomeAsync(request, probe, reading.Token).ConfigureAwait(false) is not { } one)
                    {
                        return (null, limits.TimedOut(context));
                    }

                    if (one < 0)
                    {
                        return (null, TooLarge(maxBytes));
                    }

                    if (one == 0)
                    {
                        break;
                    }

                    if (total >= maxBytes)
                    {
                        return (null, TooLarge(maxBytes));
                    }

                    var larger = (int)Math.Min((long)capacity * 2, maxBytes);
                    if (reservation.TryGrow(larger - capacity) is { } over)
                    {
                        limits.Refused(context, "bytes_in_flight");
                        return (null, over);
                    }

                    var grown = ArrayPool<byte>.Shared.Rent(larger);
                    buffer.AsSpan(0, total).CopyTo(grown);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = grown;
                    capacity = larger;
                    buffer[total++] = probe[0];
                    continue;
                }

                var read = await ReadSomeAsync(request, buffer.AsMemory(total, capacity - total), reading.Token).ConfigureAwait(false);
                if (read is not { } count)
                {
                    return (null, limits.TimedOut(context));
                }

                if (count < 0)
                {
                    return (null, TooLarge(maxBytes));
                }

                if (count == 0)
                {
                    break;
                }

                total += count;
            }

            return Parse(buffer.AsSpan(0, total), parse);
        }
        finally
        {
            // The parsed values own copies of what they hold, so the buffer can go back to the pool.
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads what has arrived: the count, 0 at the end, -1 past Kestrel's size bound, or null when the body timed out.</summary>
    private static async ValueTask<int?> ReadSomeAsync(HttpRequest request, Memory<byte> into, CancellationToken cancellationToken)
    {
        try
        {
            return await request.Body.ReadAsync(into, cancellationToken).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return -1;
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status408RequestTimeout)
        {
            // Kestrel's own minimum data rate: a trickle, refused the same way.
            return null;
        }
        catch (OperationCanceledException) when (!request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Parses a body with <paramref name="parse"/>, telling a value nested past the reader's depth bound (too_deep) from other bad JSON (malformed).</summary>
    public static (T? Value, ProtocolError? Error) Parse<T>(ReadOnlySpan<byte> json, Parser<T> parse)
        where T : class =>
        JsonText.IsValid(json) ? ParseText(json, parse, "body") : (null, new ProtocolError(ProtocolErrorCodes.Malformed, JsonText.Invalid("body")));

    /// <summary>Parses JSON whose text <see cref="JsonText.IsValid"/> has checked already (a live message's push).</summary>
    public static (T? Value, ProtocolError? Error) ParseText<T>(ReadOnlySpan<byte> json, Parser<T> parse, string what)
        where T : class
    {
        T? value;
        try
        {
            value = parse(json);
        }
        catch (JsonException e)
        {
            return (null, Malformed(json, e, what));
        }

        return value is null
            ? (null, new ProtocolError(ProtocolErrorCodes.Malformed, $"The {what} is not a valid message: it is null."))
            : (value, null);
    }

    /// <summary>Says what is wrong with JSON a reader refused, in the protocol's words: never the parser's own, which name .NET types.</summary>
    internal static ProtocolError Malformed(ReadOnlySpan<byte> json, JsonException e, string what)
    {
        if (ExceedsDepth(json, ProtocolLimits.MaxMessageDepth))
        {
            return new ProtocolError(ProtocolErrorCodes.TooDeep, $"The {what} nests deeper than {ProtocolLimits.MaxMessageDepth} levels.");
        }

        if (e is MalformedMessageException)
        {
            return new ProtocolError(ProtocolErrorCodes.Malformed, $"The {what} is not a valid message: {e.Message}");
        }

        var where = e.LineNumber is { } line && e.BytePositionInLine is { } position
            ? string.Create(CultureInfo.InvariantCulture, $" (line {line + 1}, byte {position + 1})")
            : "";
        return new ProtocolError(ProtocolErrorCodes.Malformed, $"The {what} is not valid JSON{where}: a value, a quote, a comma or a bracket is missing or out of place.");
    }

    /// <summary>Tells whether JSON opens an object or array deeper than the bound before it turns invalid, if it does.</summary>
    internal static bool ExceedsDepth(ReadOnlySpan<byte> json, int maxDepth)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = int.MaxValue, CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && reader.CurrentDepth >= maxDepth)
                {
                    return true;
                }
            }
        }
        catch (JsonException)
        {
            // Invalid before the bound: malformed, not too deep.
        }

        return false;
    }

    private static ProtocolError TooLarge(long maxBytes) =>
        new(ProtocolErrorCodes.PayloadTooLarge, $"The body is larger than the server accepts ({maxBytes} bytes).");
}
