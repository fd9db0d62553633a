using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace Converge.Server.Hosting;

/// <summary>Adds the endpoints' policy: an authenticated principal from a JWT bearer scheme, an extra configured scheme, or an API key.</summary>
internal sealed class ConvergeAuthorizationSetup(IOptions<AuthenticationOptions> authentication, IOptions<ConvergeServerOptions> server)
    : IConfigureOptions<AuthorizationOptions>
{
    public void Configure(AuthorizationOptions options)
    {
        var schemes = new List<string>();
        foreach (var scheme in authentication.Value.Schemes)
        {
            if (scheme.HandlerType == typeof(JwtBearerHandler))
            {
                schemes.Add(scheme.Name);
            }
        }

        foreach (var name in server.Value.AuthenticationSchemes)
        {
            if (!schemes.Contains(name) && name != ConvergeAuthentication.ApiKeyScheme)
            {
                schemes.Add(name);
            }
        }

        // Last, so the other schemes' challenges set their headers before the API key challenge writes the problem body.
        schemes.Add(ConvergeAuthentication.ApiKeyScheme);
        options.AddPolicy(ConvergeAuthentication.PolicyName, policy => policy.AddAuthenticationSchemes([.. schemes]).RequireAuthenticatedUser());
    }
}
