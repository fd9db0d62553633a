using Converge.Protocol.Documents;
using Converge.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.Cli;

/// <summary>A development API key of the server: the principal's name (logged and stored), the secret clients send (never logged or stored), and its scopes.</summary>
internal sealed record ApiKeySetting(string Name, string Secret, string[] Scopes);

/// <summary>Starts a Converge sync server on Kestrel: for `converge serve`, the demo and the benchmarks (bench/Converge.Benchmarks compiles this file too).</summary>
internal static class ServerHost
{
    /// <summary>Builds and starts a server on a SQLite file, or on a PostgreSQL database when <paramref name="postgres"/> is given; returns it with the address it listens on.</summary>
    public static async Task<(WebApplication App, Uri Address)> StartAsync(
        string databasePath,
        string url,
        IReadOnlyList<ApiKeySetting> apiKeys,
        IReadOnlyDictionary<string, CollectionRules>? collections,
        LogLevel logLevel,
        CancellationToken cancellationToken,
        Action<ConvergeServerOptions>? configure = null,
        IReadOnlyDictionary<string, string?>? settings = null,
        string? postgres = null)
    {
        // appsettings.json is read once: watching the content root (the working folder, which may hold the database)
        // would wake the file watcher on every WAL write.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Logging.ClearProviders();
        if (logLevel != LogLevel.None)
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(logLevel).AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }

        builder.WebHost.UseUrls(url);
        var server = builder.Services.AddConvergeServer(options =>
        {
            if (postgres is null)
            {
                options.DatabasePath = databasePath;
            }

            foreach (var key in apiKeys)
            {
                options.AddApiKey(key.Secret, key.Name, key.Scopes);
            }

            foreach (var (name, rules) in collections ?? new Dictionary<string, CollectionRules>())
            {
                options.Collection(name, rules);
            }

            configure?.Invoke(options);
        });
        if (postgres is not null)
        {
            // Every node started on the same database is one cluster: nothing else to set.
            server.UsePostgreSql(postgres);
        }

        // JWT bearer tokens, when configured: the standard "Authentication:Schemes:Bearer" section (Authority,
        // ValidAudiences, ValidIssuer, SigningKeys), from appsettings.json, environment variables or serve's --jwt-* options.
        if (builder.Configuration.GetSection("Authentication:Schemes:Bearer").Exists())
        {
            builder.Services.AddAuthentication().AddJwtBearer();
        }

        var app = builder.Build();
        app.MapConverge();
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return (app, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
    }
}
