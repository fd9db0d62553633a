using Converge.Protocol.Documents;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;

namespace TodoApp;

/// <summary>The Converge server of the sample: embedded SQLite, and the development API key every device uses.</summary>
internal sealed class ServerHost(WebApplication app, Uri address) : IAsyncDisposable
{
    /// <summary>The API key of the sample's devices: every device of the team signs in with it, each with its own client id.</summary>
    public const string DevelopmentKey = "todoapp-dev-key";

    /// <summary>The scope all devices share.</summary>
    public const string Scope = "team:demo";

    public Uri Address { get; } = address;

    public static async Task<ServerHost> StartAsync(string folder, string url)
    {
        Directory.CreateDirectory(folder);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(url);
        builder.Services.AddConvergeServer(options =>
        {
            options.DatabasePath = Path.Combine(folder, "server.db");
            options.AddApiKey(DevelopmentKey, "demo", Scope);

            // Todos take the latest edit of each field; notes leave a same-field conflict to a person.
            options.Collection("todos", new CollectionRules { Policy = ConflictPolicy.LastWriterWins });
            options.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual });
        });
        var app = builder.Build();
        app.MapConverge();
        await app.StartAsync();
        return new ServerHost(app, Listening(app));
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    /// <summary>The address the host listens on, with the port Kestrel chose when asked for port 0.</summary>
    internal static Uri Listening(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
}
