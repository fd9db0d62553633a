using System.Globalization;

namespace Converge.Protocol;

/// <summary>The text form of a replica's id (the node of its hybrid clock): 16 lowercase hex digits.</summary>
public static class ReplicaId
{
    /// <summary>Formats a replica id.</summary>
    /// <param name="id">The id.</param>
    /// <returns>16 lowercase hex digits.</returns>
    public static string Format(ulong id) => id.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Parses a replica id.</summary>
    /// <param name="text">16 lowercase hex digits.</param>
    /// <param name="id">The id, when valid.</param>
    /// <returns>Whether the text is a replica id.</returns>
    public static bool TryParse(string? text, out ulong id)
    {
        id = 0;
        if (text is null || text.Length != 16)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id);
    }

    /// <summary>Makes a new random replica id, never 0.</summary>
    /// <returns>The id.</returns>
    public static ulong NewId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id == 0);
        return id;
    }
}
