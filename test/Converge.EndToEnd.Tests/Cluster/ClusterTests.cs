using Converge.Client;
using Converge.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.EndToEnd.Tests.Cluster;

/// <summary>Several server nodes over one PostgreSQL database: every client sees every change live, whichever node it is on.</summary>
public sealed class ClusterTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly string _folder = Directory.CreateTempSubdirectory("converge-cluster-").FullName;
    private readonly List<WebApplication> _nodes = [];
    private readonly List<ConvergeClient> _clients = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync();

    public async Task DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            await node.StopAsync();
            await node.DisposeAsync();
        }

        await (await PostgresServer.GetAsync()).DropDatabaseAsync(_connectionString);
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task A_write_through_one_node_is_seen_live_by_a_client_of_the_other()
    {
        var node1 = await StartNodeAsync();
        var node2 = await StartNodeAsync();
        var a = await OpenClientAsync("a", node1);
        var b = await OpenClientAsync("b", node2);
        a.Live.Start();
        b.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        foreach (var (writer, reader, id) in new[] { (a, b, "from-node-1"), (b, a, "from-node-2") })
        {
            var seen = new TaskCompletionSource<DocumentChangedEventArgs<Todo>>(TaskCreationOptions.RunContinuationsAsynchronously);
            reader.Collection<Todo>("todos").Changed += (_, e) =>
            {
                if (e.Id == id)
                {
                    seen.TrySetResult(e);
                }
            };
            await writer.Collection<Todo>("todos").PutAsync(id, new Todo { Title = id });

            var change = await seen.Task.WaitAsync(Patience);
            Assert.Equal(ChangeOrigin.Remote, change.Origin);
            Assert.Equal(id, change.Value!.Title);
        }
    }

    private async Task<Uri> StartNodeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddConvergePostgreSql(_connectionString);
        builder.Services.AddConvergeServer(o => o.AddApiKey(SyncServer.AllScopesKey, "all", "s*"));
        var app = builder.Build();
        app.MapConverge();
        await app.StartAsync();
        _nodes.Add(app);
        return new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
    }

    private async Task<ConvergeClient> OpenClientAsync(string name, Uri node)
    {
        var options = new ConvergeClientOptions
        {
            DatabasePath = Path.Combine(_folder, name + ".db"),
            ServerUrl = node,
            AccessTokenProvider = _ => ValueTask.FromResult<string?>(SyncServer.AllScopesKey),
        };
        options.Scopes.Add("s1");
        var client = await ConvergeClient.OpenAsync(options);
        _clients.Add(client);
        return client;
    }
}
