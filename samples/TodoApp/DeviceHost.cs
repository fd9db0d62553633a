using System.Collections.Concurrent;
using Converge.Client;
using Converge.Work;
using TodoApp.Components;

namespace TodoApp;

/// <summary>One device: an ASP.NET Core host on 127.0.0.1 with its own Converge store, background sync and Blazor UI.</summary>
internal sealed class DeviceHost(WebApplication app, ConvergeClient client, Uri address) : IAsyncDisposable
{
    public Uri Address { get; } = address;

    public static async Task<DeviceHost> StartAsync(string name, Uri server, string folder, string url)
    {
        Directory.CreateDirectory(folder);
        var client = await ConvergeClient.OpenAsync(new ConvergeClientOptions
        {
            DatabasePath = Path.Combine(folder, "client.db"),
            ServerUrl = server,
            Scopes = { ServerHost.Scope },
            AccessTokenProvider = _ => ValueTask.FromResult<string?>(ServerHost.DevelopmentKey),
        });
        try
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions
            {
                ApplicationName = typeof(DeviceHost).Assembly.GetName().Name,
                ContentRootPath = AppContext.BaseDirectory,
            });
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls(url);

            // The components package's stylesheet is served from the referenced project in any environment, not only Development.
            builder.WebHost.UseStaticWebAssets();
            builder.Services.AddRazorComponents().AddInteractiveServerComponents();

            // The client is one per device, shared by every page: a singleton.
            var network = new DeviceNetwork(client);
            builder.Services.AddSingleton(client);
            builder.Services.AddSingleton(network);
            builder.Services.AddSingleton<IDeviceStateMonitor>(network);
            builder.Services.AddSingleton(new DeviceInfo(name, client));
            builder.Services
                .AddConvergeWork(options => options.DatabasePath = Path.Combine(folder, "work.db"))
                .AddConvergeSync();

            var app = builder.Build();
            app.UseAntiforgery();
            app.MapStaticAssets();
            app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
            await app.StartAsync();

            await app.Services.GetRequiredService<DeviceInfo>().StartAsync();
            client.Live.Start();
            await app.Services.GetRequiredService<IWorkManager>().ScheduleDataSyncAsync();
            return new DeviceHost(app, client, ServerHost.Listening(app));
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        await client.DisposeAsync();
    }
}

/// <summary>This device's name, and the names of the devices it has heard of, by client id.</summary>
internal sealed class DeviceInfo(string name, ConvergeClient client)
{
    private readonly ConcurrentDictionary<string, string> _names = new(StringComparer.Ordinal);
    private readonly DocumentCollection<DeviceEntry> _devices = client.Collection<DeviceEntry>("devices");

    public string Name { get; } = name;

    /// <summary>Names a device by its client id: its name when known, else the id.</summary>
    public string NameOf(string clientId) =>
        clientId == client.ClientId ? $"{Name} (this device)" : _names.TryGetValue(clientId, out var known) ? known : clientId;

    public async Task StartAsync()
    {
        _devices.Changed += (_, e) =>
        {
            if (e.Value is { } entry)
            {
                _names[e.Id] = entry.Name;
            }
        };
        var page = await _devices.Query().ToPageAsync();
        foreach (var device in page.Items)
        {
            _names[device.Id] = device.Value.Name;
        }

        await _devices.PutAsync(client.ClientId, new DeviceEntry { Name = Name });
    }
}
