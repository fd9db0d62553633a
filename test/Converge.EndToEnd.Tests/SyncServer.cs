using Converge.Client;
using Converge.Protocol.Documents;
using Converge.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.EndToEnd.Tests;

/// <summary>A real Converge server on Kestrel, 127.0.0.1, a random port and a SQLite file in a temp folder; plus clients for it.</summary>
public sealed class SyncServer : IAsyncDisposable
{
    private readonly List<ConvergeClient> _clients = [];
    private WebApplication _app;

    private SyncServer(WebApplication app, Uri address, string folder, Action<ConvergeServerOptions>? configure, TimeProvider? time, Action<WebApplicationBuilder>? host)
    {
        _app = app;
        Address = address;
        Folder = folder;
        Configure = configure;
        Time = time;
        Host = host;
    }

    /// <summary>The API key that grants every scope starting with "s".</summary>
    public const string AllScopesKey = "key-all";

    /// <summary>The API key that grants only scope "a".</summary>
    public const string ScopeAKey = "key-a";

    public Uri Address { get; private set; }

    public string Folder { get; }

    public string DatabasePath => Path.Combine(Folder, "server.db");

    private Action<ConvergeServerOptions>? Configure { get; }

    private TimeProvider? Time { get; }

    private Action<WebApplicationBuilder>? Host { get; }

    public IServiceProvider Services => _app.Services;

    /// <param name="configure">Configures the server's options.</param>
    /// <param name="time">The server's clock.</param>
    /// <param name="folder">The folder of the server's file and the clients' files.</param>
    /// <param name="host">Adds to the host (authentication schemes, say).</param>
    public static async Task<SyncServer> StartAsync(Action<ConvergeServerOptions>? configure = null, TimeProvider? time = null, string? folder = null, Action<WebApplicationBuilder>? host = null)
    {
        folder ??= Directory.CreateTempSubdirectory("converge-e2e-").FullName;
        var (app, address) = await BuildAsync(Path.Combine(folder, "server.db"), configure, time, port: 0, host);
        return new SyncServer(app, address, folder, configure, time, host);
    }

    /// <summary>Stops the server and starts it again on the same file and port.</summary>
    /// <param name="whileStopped">Runs once the server has let go of its file, before it starts again (to restore a backup, say).</param>
    public async Task RestartAsync(Func<Task>? whileStopped = null)
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (whileStopped is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            await whileStopped();
        }

        (_app, Address) = await BuildAsync(DatabasePath, Configure, Time, Address.Port, Host);
    }

    public Task StopAsync() => _app.StopAsync();

    public async Task<ConvergeClient> OpenClientAsync(string name, string scope = "s1", string key = AllScopesKey, Action<ConvergeClientOptions>? configure = null)
    {
        var options = new ConvergeClientOptions
        {
            DatabasePath = Path.Combine(Folder, name + ".db"),
            ServerUrl = Address,
            AccessTokenProvider = _ => ValueTask.FromResult<string?>(key),
        };
        options.Scopes.Add(scope);
        configure?.Invoke(options);
        var client = await ConvergeClient.OpenAsync(options);
        _clients.Add(client);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<(WebApplication, Uri)> BuildAsync(string databasePath, Action<ConvergeServerOptions>? configure, TimeProvider? time, int port, Action<WebApplicationBuilder>? host)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        if (time is not null)
        {
            builder.Services.AddSingleton<TimeProvider>(time);
        }

        builder.Services.AddConvergeServer(options =>
        {
            options.DatabasePath = databasePath;
            options.AddApiKey(AllScopesKey, "all", "s*");
            options.AddApiKey(ScopeAKey, "alice", "a");
            configure?.Invoke(options);
        });
        host?.Invoke(builder);
        var app = builder.Build();
        app.MapConverge();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return (app, new Uri(address));
    }
}

/// <summary>The documents the tests write.</summary>
public sealed record Todo
{
    public string? Title { get; init; }

    public bool Done { get; init; }

    public string? Note { get; init; }

    public long Count { get; init; }
}

public static class Rules
{
    public static Action<ConvergeServerOptions> For(string collection, ConflictPolicy policy, DeleteRule delete = DeleteRule.DeleteWins) =>
        options => options.Collection(collection, new CollectionRules { Policy = policy, Delete = delete });
}
