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
    public static async Task<(T? Value, ProtocolError? Error)> ReadAsync<T>(HttpContext context, long maxBytes, Parser<T> parse)
        where T : class
    {
        var request = context.Request;
        if (request.ContentLength is { } declared && declared > maxBytes)
        {
            return (null, TooLarge(maxBytes));
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = maxBytes;
        }

        var capacity = (int)Math.Min(request.ContentLength is { } length ? length + 1 : 16 * 1024, maxBytes + 1);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(capacity, 256));
        try
        {
            var total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, total).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                int read;
                try
                {
                    read = await request.Body.ReadAsync(buffer.AsMemory(total), context.RequestAborted).ConfigureAwait(false);
                }
                catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
                {
                    return (null, TooLarge(maxBytes));
                }

                if (read == 0)
                {
                    break;
                }

                total += read;
                if (total > maxBytes)
                {
                    return (null, TooLarge(maxBytes));
                }
            }

            return Parse(buffer.AsSpan(0, total), parse);
        }
        finally
        {
            // The parsed values own copies of what they hold, so the buffer can go back to the pool.
            ArrayPool<byte>.Shared.Return(buffer);
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
