using System.Buffers.Text;
using System.Text.Unicode;

namespace Converge.Server.Http;

/// <summary>Checks that every string of a JSON message is Unicode text: valid UTF-8, and no lone surrogate escaped as <c>\uD800</c> to <c>\uDFFF</c>.</summary>
/// <remarks>
/// The JSON readers take such strings without complaint and fail only when one is turned into text, deep inside the
/// work: in a name, in the store's transaction, in another device's pull. Checked once, up front, over the raw bytes
/// (two vectorized scans, and a look at each <c>\u</c> escape), nothing after it meets them. Syntax is left to the parser.
/// </remarks>
internal static class JsonText
{
    /// <summary>The detail of a refusal, in the protocol's words; <paramref name="what"/> is "body" or "message".</summary>
    public static string Invalid(string what) =>
        $"The {what} holds text that is not valid UTF-8: an invalid byte sequence, or a lone surrogate escaped as \\uD800 to \\uDFFF.";

    /// <summary>Tells whether every string of the JSON is Unicode text.</summary>
    /// <param name="json">The message, as received.</param>
    /// <returns><see langword="false"/> when a byte sequence is not UTF-8 or an escape names half a surrogate pair.</returns>
    public static bool IsValid(ReadOnlySpan<byte> json)
    {
        if (!Utf8.IsValid(json))
        {
            return false;
        }

        // Outside strings a backslash is a syntax error, which the parser reports; inside, it starts an escape. So every
        // backslash found from the start, skipping each escape whole, starts one.
        var rest = json;
        var highPending = false;
        while (true)
        {
            var at = rest.IndexOf((byte)'\\');
            if (at < 0 || at + 1 >= rest.Length)
            {
                return !highPending;
            }

            if (highPending && at != 0)
            {
                return false;
            }

            if (rest[at + 1] != (byte)'u')
            {
                if (highPending)
                {
                    return false;
                }

                rest = rest[(at + 2)..];
                continue;
            }

            if (at + 6 > rest.Length || !Utf8Parser.TryParse(rest.Slice(at + 2, 4), out ushort unit, out var used, 'x') || used != 4)
            {
                return true;
            }

            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                if (highPending)
                {
                    return false;
                }

                highPending = true;
            }
            else if (unit is >= 0xDC00 and <= 0xDFFF)
            {
                if (!highPending)
                {
                    return false;
                }

                highPending = false;
            }
            else if (highPending)
            {
                return false;
            }

            rest = rest[(at + 6)..];
        }
    }
}
