using System.Buffers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Converge.Protocol.Messages;
using Converge.Server.Http;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Converge.Server.Authentication;

/// <summary>The configured API keys, kept only as SHA-256 hashes of their secrets.</summary>
/// <remarks>
/// A presented key is hashed, the hash's first 8 bytes pick a bucket, and the full 32 bytes are compared with
/// <see cref="CryptographicOperations.FixedTimeEquals"/>. Hashing first means the lookup's timing can only depend on the
/// hash of what the caller sent, never on how many leading characters of a real secret it guessed; the fixed-time final
/// comparison keeps it so even if the lookup is changed later. The secrets themselves are never kept, logged or stored:
/// a key's principal is its name.
/// </remarks>
internal sealed class ApiKeyRegistry
{
    private readonly Dictionary<ulong, List<Entry>> _keys = [];
    private readonly string _scheme;

    public ApiKeyRegistry(ConvergeServerOptions options, string scheme = ConvergeAuthentication.ApiKeyScheme)
    {
        _scheme = scheme;
        foreach (var (key, identity) in options.ApiKeys)
        {
            var claims = new List<Claim>(identity.Scopes.Count + 2)
            {
                new(ClaimTypes.Name, identity.Name),
                new(ClaimTypes.NameIdentifier, identity.Name),
            };
            foreach (var scope in identity.Scopes)
            {
                claims.Add(new Claim(options.ScopeClaimType, scope));
            }

            var hash = Hash(key);
            if (!_keys.TryGetValue(Bucket(hash), out var bucket))
            {
                _keys[Bucket(hash)] = bucket = [];
            }

            bucket.Add(new Entry(hash, identity.Name, [.. claims]));
        }
    }

    /// <summary>Finds the key a caller presented and makes its principal's identity.</summary>
    public bool TryFind(ReadOnlySpan<char> key, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ClaimsIdentity? identity)
    {
        identity = null;
        var hash = Hash(key);
        if (!_keys.TryGetValue(Bucket(hash), out var bucket))
        {
            return false;
        }

        foreach (var entry in bucket)
        {
            if (CryptographicOperations.FixedTimeEquals(entry.Hash, hash))
            {
                identity = new ApiKeyIdentity(entry.Claims, _scheme, entry.Name, Convert.ToHexString(hash));
                return true;
            }
        }

        return false;
    }

    private static ulong Bucket(byte[] hash) => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash);

    private static byte[] Hash(ReadOnlySpan<char> key)
    {
        var hash = new byte[SHA256.HashSizeInBytes];
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = max <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var length = Encoding.UTF8.GetBytes(key, buffer);
            SHA256.HashData(buffer[..length], hash);
            CryptographicOperations.ZeroMemory(buffer[..length]);
            return hash;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private sealed record Entry(byte[] Hash, string Name, Claim[] Claims);
}

/// <summary>Authenticates <c>Authorization: Bearer &lt;key&gt;</c> with a configured development API key.</summary>
/// <remarks>
/// An unknown token is no result rather than a failure, so a JWT bearer scheme in the same policy can still accept it.
/// The challenge answers 401 with a problem body whose code is <c>unauthenticated</c>.
/// </remarks>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyRegistry registry)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private const string Bearer = "Bearer ";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count != 1 || header[0] is not { } value || !value.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var token = value.AsSpan(Bearer.Length).Trim();
        if (token.IsEmpty || !registry.TryFind(token, out var identity))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        if (!Response.Headers.ContainsKey(HeaderNames.WWWAuthenticate))
        {
            Response.Headers.WWWAuthenticate = "Bearer";
        }

        if (!Response.HasStarted)
        {
            await Problem.WriteAsync(Context, StatusCodes.Status401Unauthorized, ProtocolErrorCodes.Unauthenticated, "The request needs a valid bearer token: an API key or a JWT.").ConfigureAwait(false);
        }
    }
}
