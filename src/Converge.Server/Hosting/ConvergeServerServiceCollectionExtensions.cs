using System.Diagnostics.Metrics;
using Converge.Server;
using Converge.Server.Authentication;
using Converge.Server.Engine;
using Converge.Server.Hosting;
using Converge.Server.Http;
using Converge.Server.Live;
using Converge.Server.Storage;
using Converge.Server.Storage.Sqlite;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Converge sync server with a service collection.</summary>
public static class ConvergeServerServiceCollectionExtensions
{
    /// <summary>Adds the sync server: its options, store, engine, API key authentication, authorization policy, scope authorizer and background compaction. Calling it again only adds configuration.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the options; <see cref="ConvergeServerOptions.DatabasePath"/> is required on the embedded SQLite store.</param>
    /// <returns>The server's builder, for a store of another package (<c>.UsePostgreSql(connectionString)</c>).</returns>
    /// <remarks>
    /// <para>
    /// <see cref="TimeProvider"/>, <see cref="ILoggerFactory"/> and <see cref="IMeterFactory"/> are taken from the container
    /// when registered there. An <see cref="ISyncStore"/> or <see cref="IScopeAuthorizer"/> registered before or after this
    /// call replaces the SQLite store or the claims-based authorizer; without another store, the server keeps its data in
    /// the SQLite file at <see cref="ConvergeServerOptions.DatabasePath"/>. Options are validated when the host starts.
    /// </para>
    /// <para>
    /// To accept JWTs as well as API keys, add JWT bearer authentication
    /// (<c>services.AddAuthentication().AddJwtBearer(...)</c>): the endpoints' policy accepts every JWT bearer scheme.
    /// </para>
    /// </remarks>
    public static IConvergeServerBuilder AddConvergeServer(this IServiceCollection services, Action<ConvergeServerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        var builder = new ConvergeServerBuilder(services);
        if (services.Any(d => d.ServiceType == typeof(ConvergeServerMarker)))
        {
            return builder;
        }

        // The embedded SQLite store, unless a store is registered already; one registered later replaces it, since the
        // last registration is the one resolved. The marker tells which it is when the options are validated.
        ServiceDescriptor? embeddedStore = null;
        if (!services.Any(d => d.ServiceType == typeof(ISyncStore) && !d.IsKeyedService))
        {
            embeddedStore = ServiceDescriptor.Singleton<ISyncStore>(sp =>
            {
                var options = sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value;
                return new SqliteSyncStore(options.DatabasePath, options.Synchronous);
            });
            services.Add(embeddedStore);
        }

        var marker = new ConvergeServerMarker(services, embeddedStore);
        services.AddSingleton(marker);
        services.AddOptions<ConvergeServerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ConvergeServerOptions>>(new ConvergeServerOptionsValidator(marker)));
        services.TryAddSingleton(sp => new ServerMetrics(sp.GetService<IMeterFactory>()));
        services.TryAddSingleton(sp => new LiveHub(
            sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
            sp.GetRequiredService<ServerMetrics>(),
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server.Live")));
        services.TryAddSingleton(sp => new SyncEngine(
            StoreContractCheck.Resolve(sp),
            sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server"),
            sp.GetRequiredService<ServerMetrics>(),
            sp.GetRequiredService<LiveHub>()));
        services.TryAddSingleton(sp => new ConvergeCompactor(sp.GetRequiredService<SyncEngine>()));
        services.TryAddSingleton<IScopeAuthorizer>(sp => new ClaimsScopeAuthorizer(sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value.ScopeClaimType));
        services.TryAddSingleton(sp => new RequestLimits(
            sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetRequiredService<ServerMetrics>(),
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server")));
        services.TryAddSingleton(sp => new ConvergeEndpoints(
            sp.GetRequiredService<SyncEngine>(),
            sp.GetRequiredService<IScopeAuthorizer>(),
            sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
            sp.GetRequiredService<RequestLimits>(),
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger<ConvergeEndpoints>()));
        services.TryAddSingleton(sp => new LiveEndpoint(
            sp.GetRequiredService<ConvergeEndpoints>(),
            sp.GetRequiredService<SyncEngine>(),
            sp.GetRequiredService<IScopeAuthorizer>(),
            sp.GetRequiredService<LiveHub>(),
            sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
            sp.GetRequiredService<RequestLimits>(),
            sp.GetRequiredService<ServerMetrics>(),
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server.Live"),
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetService<IHostApplicationLifetime>()));

        // The live channel needs the WebSocket middleware ahead of the app's own.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartupFilter, WebSocketsStartupFilter>());
        services.TryAddSingleton(sp => new ApiKeyRegistry(sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value));

        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ConvergeAuthentication.ApiKeyScheme, displayName: "Converge API key", _ => { });
        services.AddAuthorization();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<AuthorizationOptions>, ConvergeAuthorizationSetup>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<JwtBearerOptions>, TokenClockSkewSetup>());

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ConvergeServerLifetime>(
            sp => new ConvergeServerLifetime(sp.GetRequiredService<SyncEngine>(), (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server"))));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, LiveFeedService>(
            sp => new LiveFeedService(
                StoreContractCheck.Resolve(sp),
                sp.GetRequiredService<SyncEngine>(),
                sp.GetRequiredService<LiveHub>(),
                sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
                sp.GetService<TimeProvider>() ?? TimeProvider.System,
                (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server.Live"))));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, CompactionService>(
            sp => new CompactionService(
                sp.GetRequiredService<ConvergeCompactor>(),
                sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value,
                sp.GetService<TimeProvider>() ?? TimeProvider.System,
                (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Converge.Server"))));
        return builder;
    }

    private sealed class WebSocketsStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            // Adds the WebSocket feature only to requests that do not have it yet, so an app's own UseWebSockets is kept.
            app.UseWebSockets();
            next(app);
        };
    }

    private sealed class ConvergeServerOptionsValidator(ConvergeServerMarker marker) : IValidateOptions<ConvergeServerOptions>
    {
        public ValidateOptionsResult Validate(string? name, ConvergeServerOptions options)
        {
            // Only the embedded SQLite store needs DatabasePath.
            var errors = options.Validate(marker.UsesEmbeddedStore);
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => "ConvergeServerOptions." + e));
        }
    }
}
