using System.Globalization;
using System.Text;

namespace Converge.Server;

/// <summary>Makes text a caller chose (a principal's name from a token, a request path) safe to write to a log.</summary>
/// <remarks>
/// Control characters (CR, LF, ESC, …), format characters (bidi overrides, zero-width characters, the BOM), line and
/// paragraph separators and lone surrogates become <c>\uXXXX</c>, so a caller can neither forge a log line, nor drive a
/// terminal, nor make one name look like another; text longer than <see cref="MaxLength"/> characters is cut, ending
/// with an ellipsis. Other characters, in any script, are kept.
/// </remarks>
internal static class LogText
{
    /// <summary>The most characters a sanitized text has, its ellipsis included.</summary>
    public const int MaxLength = 128;

    private const char Ellipsis = '…';

    /// <summary>Sanitizes a text for a log.</summary>
    /// <param name="text">The text; <see langword="null"/> gives an empty string.</param>
    /// <returns>The text, with what could forge or hide text escaped, and at most <see cref="MaxLength"/> characters.</returns>
    public static string Sanitize(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "";
        }

        if (text.Length <= MaxLength && IsSafe(text))
        {
            return text;
        }

        var builder = new StringBuilder(MaxLength);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var pair = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            var escape = !pair && IsUnsafe(c);
            var width = pair ? 2 : escape ? 6 : 1;

            // Room is kept for the ellipsis unless this is the end of the text.
            var last = i + (pair ? 2 : 1) == text.Length;
            if (builder.Length + width > (last ? MaxLength : MaxLength - 1))
            {
                builder.Append(Ellipsis);
                break;
            }

            if (pair)
            {
                builder.Append(c).Append(text[++i]);
            }
            else if (escape)
            {
                builder.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private static bool IsSafe(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (IsUnsafe(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Tells a character (not part of a surrogate pair) that could forge, hide or reorder text.</summary>
    private static bool IsUnsafe(char c) => c < ' ' || (c >= '\u007F' && CharUnicodeInfo.GetUnicodeCategory(c) is
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate);
}
