using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Converge.Server.Hosting;

/// <summary>
/// Gives every JWT bearer scheme the server's clock skew (<see cref="ConvergeServerOptions.TokenClockSkew"/>) when the app
/// left the library's five-minute default.
/// </summary>
/// <remarks>
/// One skew for the HTTP API and the live channel: a token is accepted until its expiry plus the skew, and a live
/// connection opened with it is closed then (<see cref="TokenLifetime"/>).
/// </remarks>
internal sealed class TokenClockSkewSetup(IOptions<ConvergeServerOptions> server) : IPostConfigureOptions<JwtBearerOptions>
{
    public void PostConfigure(string? name, JwtBearerOptions options)
    {
        var parameters = options.TokenValidationParameters;
        if (parameters is null)
        {
            return;
        }

        if (parameters.ClockSkew == TokenValidationParameters.DefaultClockSkew)
        {
            parameters.ClockSkew = server.Value.TokenClockSkew;
        }
    }
}

/// <summary>When a live connection's credentials stop being valid: the expiry its authentication gave, plus the clock skew of its JWT scheme.</summary>
internal static class TokenLifetime
{
    public static async Task<DateTimeOffset?> EndOfAsync(HttpContext context)
    {
        var expires = context.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult?.Properties?.ExpiresUtc;
        if (expires is not { } end)
        {
            return null;
        }

        var services = context.RequestServices;
        if (services.GetService<IAuthenticationSchemeProvider>() is not { } schemes || services.GetService<IOptionsMonitor<JwtBearerOptions>>() is not { } jwt)
        {
            return end;
        }

        // The policy's ticket carries the earliest expiry of its schemes; the JWT scheme that gave it also gives the skew
        // it validated the token with. Each scheme authenticates once per request, so asking again costs nothing.
        foreach (var scheme in await schemes.GetAllSchemesAsync().ConfigureAwait(false))
        {
            if (scheme.HandlerType != typeof(JwtBearerHandler))
            {
                continue;
            }

            var result = await context.AuthenticateAsync(scheme.Name).ConfigureAwait(false);
            if (result.Succeeded && result.Properties?.ExpiresUtc == end)
            {
                return end + (jwt.Get(scheme.Name).TokenValidationParameters?.ClockSkew ?? TimeSpan.Zero);
            }
        }

        return end;
    }
}
