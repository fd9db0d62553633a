using Converge.Server;
using Converge.Server.Hosting;
using Converge.Server.Http;
using Converge.Server.Live;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the Converge HTTP API.</summary>
public static class ConvergeEndpointRouteBuilderExtensions
{
    /// <summary>Maps the HTTP API v1 under a base path: push, pull, conflicts, resolve, and the anonymous health endpoint.</summary>
    /// <param name="endpoints">The app.</param>
    /// <param name="basePath">The base path.</param>
    /// <returns>The group of the endpoints, to add conventions to (CORS, the app's own rate limiting policies).</returns>
    /// <exception cref="InvalidOperationException"><c>AddConvergeServer</c> was not called.</exception>
    /// <remarks>
    /// <c>POST {base}/v1/push</c>, <c>GET {base}/v1/pull</c>, <c>GET {base}/v1/conflicts</c>,
    /// <c>POST {base}/v1/conflicts/{id}/resolve</c> and the live WebSocket <c>GET {base}/v1/live</c> need the <see cref="ConvergeAuthentication.PolicyName"/> policy;
    /// <c>GET {base}/v1/health</c> is anonymous. A <c>WebApplication</c> adds the authentication and authorization
    /// middleware by itself; otherwise call <c>UseAuthentication</c> and <c>UseAuthorization</c> after <c>UseRouting</c>.
    /// The endpoints keep each principal within <see cref="ConvergeServerOptions.MaxConcurrentRequestsPerPrincipal"/>,
    /// <see cref="ConvergeServerOptions.MaxLiveConnectionsPerPrincipal"/> and the bytes-in-flight bounds by themselves,
    /// with no middleware to add.
    /// </remarks>
    public static RouteGroupBuilder MapConverge(this IEndpointRouteBuilder endpoints, string basePath = "/converge")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(basePath);
        if (endpoints.ServiceProvider.GetService<ConvergeServerMarker>() is null)
        {
            throw new InvalidOperationException("MapConverge needs the Converge server's services: call services.AddConvergeServer(options => ...) when building the app.");
        }

        var path = "/" + basePath.Trim('/');
        var group = endpoints.MapGroup(path == "/" ? "" : path);
        group.MapPost("/v1/push", context => Limits(context).RunAsync(context, Handlers(context).PushAsync)).RequireAuthorization(ConvergeAuthentication.PolicyName);
        group.MapGet("/v1/pull", context => Limits(context).RunAsync(context, Handlers(context).PullAsync)).RequireAuthorization(ConvergeAuthentication.PolicyName);
        group.MapGet("/v1/conflicts", context => Limits(context).RunAsync(context, Handlers(context).ListConflictsAsync)).RequireAuthorization(ConvergeAuthentication.PolicyName);
        group.MapPost("/v1/conflicts/{id}/resolve", context => Limits(context).RunAsync(context, Handlers(context).ResolveAsync)).RequireAuthorization(ConvergeAuthentication.PolicyName);
        group.MapGet("/" + LiveProtocol.Path, context => context.RequestServices.GetRequiredService<LiveEndpoint>().HandleAsync(context)).RequireAuthorization(ConvergeAuthentication.PolicyName);
        group.MapGet("/v1/health", context => Handlers(context).HealthAsync(context)).AllowAnonymous();
        return group;
    }

    private static ConvergeEndpoints Handlers(HttpContext context) => context.RequestServices.GetRequiredService<ConvergeEndpoints>();

    private static RequestLimits Limits(HttpContext context) => context.RequestServices.GetRequiredService<RequestLimits>();
}
