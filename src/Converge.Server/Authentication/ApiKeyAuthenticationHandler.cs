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

/// <summary>The configured API keys, looked up by their SHA-256 hash so the lookup's timing says nothing about a key.</summary>
internal sealed class ApiKeyRegistry
{
    private readonly Dictionary<string, Claim[]> _keys = new(StringComparer.Ordinal);

    public ApiKeyRegistry(ConvergeServerOptions options)
    {
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

            _keys[Hash(key)] = [.. claims];
        }
    }

    public bool TryFind(ReadOnlySpan<char> key, out Claim[] claims) => _keys.TryGetValue(Hash(key), out claims!);

    private static string Hash(ReadOnlySpan<char> key)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = max <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var length = Encoding.UTF8.GetBytes(key, buffer);
            SHA256.HashData(buffer[..length], hash);
            return Convert.ToHexString(hash);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
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
        if (token.IsEmpty || !registry.TryFind(token, out var claims))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var identity = new ClaimsIdentity(claims, Scheme.Name, ClaimTypes.Name, ClaimTypes.Role);
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
