using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace Converge.Server.Authentication;

/// <summary>
/// The one rule that says who a principal is: the stable key under which its clients' progress is kept, in a namespace
/// per kind of credential, so no principal can stand in for another.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>apikey:NAME</c>: a configured API key, by its name (never its secret). Only the API key handler makes such an identity.</item>
/// <item><c>jwt:ISSUER|SUBJECT</c>: a token's <c>sub</c> (or name identifier, when inbound claims are mapped) qualified by its <c>iss</c> claim.</item>
/// <item><c>auth:AUTHENTICATION-TYPE|NAME-IDENTIFIER</c>: any other scheme, by its identity's authentication type and name identifier.</item>
/// </list>
/// <para>
/// A principal with none of these (a token without a subject) has no stable identity and is refused. In each component,
/// <c>%</c>, <c>|</c>, <c>#</c>, control characters and lone surrogates are written as <c>%XXXX</c> (the UTF-16 code in
/// hexadecimal), so the separator is unambiguous and every key is valid text in any store. A key longer than
/// <see cref="MaxKeyLength"/> keeps a readable start and ends with <c>#</c> and the SHA-256 of the whole key; a readable
/// key never holds a <c>#</c>, so the two forms never meet.
/// </para>
/// </remarks>
internal static class PrincipalIdentity
{
    /// <summary>The longest key stored as it is.</summary>
    public const int MaxKeyLength = 200;

    /// <summary>The readable start kept of a longer key.</summary>
    private const int KeptLength = 120;

    /// <summary>The prefix of client progress records made before keys had namespaces; see <see cref="LegacyKeys"/>.</summary>
    public const string LegacyPrefix = "legacy:";

    /// <summary>The detail of the refusal of a principal without a stable identity.</summary>
    public const string NoSubject = "The token has no subject: the server needs a stable identity ('sub' claim, or a name identifier) to keep its devices' writes apart from everyone else's.";

    /// <summary>Gets the stable key of a principal, or says it has none.</summary>
    /// <param name="user">The authenticated principal.</param>
    /// <param name="key">The key, when there is one.</param>
    /// <returns>Whether the principal has a stable identity.</returns>
    public static bool TryGetKey(ClaimsPrincipal user, out string key)
    {
        ArgumentNullException.ThrowIfNull(user);
        foreach (var identity in user.Identities)
        {
            if (identity is ApiKeyIdentity apiKey)
            {
                key = Bound("apikey:" + Escape(apiKey.KeyName));
                return true;
            }
        }

        foreach (var identity in user.Identities)
        {
            if (!identity.IsAuthenticated)
            {
                continue;
            }

            var subject = Value(identity, "sub") ?? Value(identity, ClaimTypes.NameIdentifier);
            if (subject is null)
            {
                continue;
            }

            key = Value(identity, "iss") is { } issuer
                ? Bound("jwt:" + Escape(issuer) + "|" + Escape(subject))
                : Bound("auth:" + Escape(identity.AuthenticationType!) + "|" + Escape(subject));
            return true;
        }

        key = "";
        return false;
    }

    /// <summary>Gets the keys under which the same principal's client progress was kept before keys had namespaces, as a store migrated them.</summary>
    /// <remarks>
    /// Earlier servers keyed a principal by its name identifier, else <c>sub</c>, else name: without a namespace, and for
    /// <c>converge serve</c>'s old <c>--api-key KEY=SCOPES</c> by the secret itself. Migrating a store replaced each such
    /// key by <see cref="LegacyPrefix"/> and the SHA-256 of the old key in upper-case hexadecimal, so no secret stays in the store;
    /// a client whose progress is not found under its new key takes the progress found under these.
    /// </remarks>
    public static IReadOnlyList<string> LegacyKeys(ClaimsPrincipal user)
    {
        var keys = new List<string>(2);
        var old = user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.FindFirst("sub")?.Value ?? user.Identity?.Name;
        if (!string.IsNullOrEmpty(old))
        {
            keys.Add(LegacyPrefix + HashHex(old));
        }

        foreach (var identity in user.Identities)
        {
            if (identity is ApiKeyIdentity apiKey && !keys.Contains(LegacyPrefix + apiKey.SecretHash))
            {
                keys.Add(LegacyPrefix + apiKey.SecretHash);
            }
        }

        return keys;
    }

    /// <summary>The SHA-256 of a text's UTF-8 bytes, in upper-case hexadecimal: the form of API key hashes and of migrated keys.</summary>
    public static string HashHex(ReadOnlySpan<char> text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text)];
        Encoding.UTF8.GetBytes(text, bytes);
        return Convert.ToHexString(SHA256.HashData(bytes));
    }

    private static string? Value(ClaimsIdentity identity, string type)
    {
        var value = identity.FindFirst(type)?.Value;
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>Escapes what could blur a key's structure or not be valid text in a store.</summary>
    internal static string Escape(string value)
    {
        var clean = true;
        for (var i = 0; i < value.Length && clean; i++)
        {
            clean = !NeedsEscape(value, i);
        }

        if (clean)
        {
            return value;
        }

        var builder = new StringBuilder(value.Length + 16);
        for (var i = 0; i < value.Length; i++)
        {
            if (NeedsEscape(value, i))
            {
                builder.Append('%').Append(((int)value[i]).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(value[i]);
            }
        }

        return builder.ToString();
    }

    private static bool NeedsEscape(string value, int i)
    {
        var c = value[i];
        if (c is '%' or '|' or '#' || char.IsControl(c))
        {
            return true;
        }

        if (char.IsHighSurrogate(c))
        {
            return i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]);
        }

        return char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(value[i - 1]));
    }

    /// <summary>Keeps a long key's readable start and replaces the rest by the hash of the whole key.</summary>
    private static string Bound(string key)
    {
        if (key.Length <= MaxKeyLength)
        {
            return key;
        }

        var kept = KeptLength;
        if (char.IsHighSurrogate(key[kept - 1]))
        {
            kept--;
        }

        return string.Concat(key.AsSpan(0, kept), "#", HashHex(key));
    }
}

/// <summary>The identity of an API key principal; only <see cref="ApiKeyAuthenticationHandler"/> makes one, so no token can claim to be an API key.</summary>
internal sealed class ApiKeyIdentity : ClaimsIdentity
{
    public ApiKeyIdentity(IEnumerable<Claim> claims, string authenticationType, string keyName, string secretHash)
        : base(claims, authenticationType, ClaimTypes.Name, ClaimTypes.Role)
    {
        KeyName = keyName;
        SecretHash = secretHash;
    }

    private ApiKeyIdentity(ApiKeyIdentity other)
        : base(other)
    {
        KeyName = other.KeyName;
        SecretHash = other.SecretHash;
    }

    /// <summary>Gets the key's configured name.</summary>
    public string KeyName { get; }

    /// <summary>Gets the SHA-256 of the key's secret, in upper-case hexadecimal: how progress kept under the secret by earlier servers is found.</summary>
    public string SecretHash { get; }

    public override ClaimsIdentity Clone() => new ApiKeyIdentity(this);
}
