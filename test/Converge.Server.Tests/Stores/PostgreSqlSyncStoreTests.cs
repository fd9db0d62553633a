using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Engine;
using Converge.Server.PostgreSql;
using Converge.Server.Storage;
using Converge.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Converge.Server.Tests.Stores;

/// <summary>The store contract, run against the PostgreSQL store: a database per store name, on the test run's PostgreSQL.</summary>
public sealed class PostgreSqlSyncStoreContractTests : SyncStoreContract
{
    private readonly Dictionary<string, string> _databases = new(StringComparer.Ordinal);

    protected override async Task<ISyncStore> CreateStoreAsync(string name)
    {
        if (!_databases.TryGetValue(name, out var connectionString))
        {
            connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync();
            _databases.Add(name, connectionString);
        }

        return PostgreSqlSyncStore.Create(connectionString, null);
    }

    protected override async Task CloseStoreAsync(ISyncStore store) => await ((PostgreSqlSyncStore)store).DisposeAsync();

    protected override async Task CleanUpAsync()
    {
        var server = await PostgresServer.GetAsync();
        foreach (var connectionString in _databases.Values)
        {
            await server.DropDatabaseAsync(connectionString);
        }
    }
}

/// <summary>What only the PostgreSQL store does: several writers and several server nodes on one database.</summary>
public sealed class PostgreSqlSyncStoreTests : IAsyncLifetime
{
    private const string Scope = "team:x";

    private readonly List<IAsyncDisposable> _stores = [];
    private PostgresServer _server = null!;
    private string _connectionString = "";

    public async Task InitializeAsync()
    {
        _server = await PostgresServer.GetAsync();
        _connectionString = await _server.CreateDatabaseAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        await _server.DropDatabaseAsync(_connectionString);
    }

    private PostgreSqlSyncStore NewStore()
    {
        var store = PostgreSqlSyncStore.Create(_connectionString, null);
        _stores.Add(store);
        return store;
    }

    /// <summary>A server node: an engine on a store of its own, as a second process on the same database would have.</summary>
    private async Task<SyncEngine> StartNodeAsync(ConvergeServerOptions? options = null)
    {
        var engine = new SyncEngine(NewStore(), options ?? new ConvergeServerOptions(), TimeProvider.System, NullLogger.Instance, new ServerMetrics(null));
        await engine.EnsureInitializedAsync(CancellationToken.None);
        return engine;
    }

    /// <summary>The documents of a pull page, whether the store gave their states as stored JSON or built.</summary>
    private static IEnumerable<(string Id, DocumentState State)> Documents(PullPage page) =>
        page.Raw is { } raw
            ? raw.Documents.Select(d => (d.Id, JsonSerializer.Deserialize(d.State.Span, ProtocolJson.DocumentState)!))
            : page.Documents!.Select(d => (d.DocumentId, d.State));

    [Fact]
    public async Task Concurrent_pushes_to_one_scope_over_two_nodes_commit_in_revision_order_so_a_puller_never_passes_a_revision_that_commits_later()
    {
        SyncEngine[] nodes = [await StartNodeAsync(), await StartNodeAsync()];
        for (var run = 0; run < 5; run++)
        {
            await WritersAndPullerAsync(nodes, Scope + "-" + run);
        }
    }

    /// <summary>8 writers spread over the nodes push to one scope while a puller, alternating nodes, pulls pages of 3.</summary>
    private static async Task WritersAndPullerAsync(SyncEngine[] nodes, string scope)
    {
        const int writers = 8;
        const int pushesPerWriter = 12;
        var acknowledged = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);

        // Every document is written once: a change the puller's cursor passed before it committed would never reach it.
        var writing = Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var device = new Device(TimeProvider.System);
            var node = nodes[w % nodes.Length];
            for (var p = 0; p < pushesPerWriter; p++)
            {
                var mutations = Enumerable.Range(0, 1 + (p % 3)).Select(k => device.Put(scope, "c", $"w{w}-p{p}-{k}", 0, """{"v":1}""")).ToArray();
                var response = await node.PushAsync(device.Batch(mutations), "p", [], CancellationToken.None);
                foreach (var (mutation, result) in mutations.Zip(response.Results))
                {
                    Assert.Equal(MutationStatus.Applied, result.Status);
                    acknowledged[mutation.DocumentId] = result.Revision;
                }
            }
        })));

        var pulled = new Dictionary<string, long>(StringComparer.Ordinal);
        long cursor = 0;
        var pages = 0;
        var pagesDuringWrites = 0;
        while (true)
        {
            var last = writing.IsCompleted;
            PullPage page;
            do
            {
                page = await nodes[pages++ % nodes.Length].PullAsync(scope, cursor, 3, CancellationToken.None);
                Assert.False(page.Reset);
                Assert.True(page.Cursor >= cursor);
                foreach (var (id, state) in Documents(page))
                {
                    Assert.True(state.Revision > cursor, "a page holds only changes after its cursor");
                    pulled[id] = state.Revision;
                }

                cursor = page.Cursor;
                pagesDuringWrites += last ? 0 : 1;
            }
            while (page.HasMore);

            if (last)
            {
                break;
            }
        }

        await writing;
        Assert.True(pagesDuringWrites > 0, "the puller ran while the writers did");
        Assert.Equal(writers * pushesPerWriter * 2, acknowledged.Count);
        Assert.Equal(acknowledged.OrderBy(p => p.Key, StringComparer.Ordinal), pulled.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal(acknowledged.Count, acknowledged.Values.Distinct().Count());
        Assert.Equal(acknowledged.Count, cursor);
    }

    [Fact]
    public async Task One_push_sent_to_two_nodes_at_once_is_applied_once()
    {
        var (a, b) = (await StartNodeAsync(), await StartNodeAsync());
        const int rounds = 10;
        for (var round = 0; round < rounds; round++)
        {
            // A new client each round: its first push races on a progress row that does not exist yet.
            var device = new Device(TimeProvider.System);
            var push = device.Batch(device.Increment(Scope, "counters", "hits", """{"n":1}"""));

            var responses = await Task.WhenAll(
                Task.Run(() => a.PushAsync(push, "p", [], CancellationToken.None)),
                Task.Run(() => b.PushAsync(push, "p", [], CancellationToken.None)));

            Assert.Equal([MutationStatus.Applied, MutationStatus.Duplicate], responses.Select(r => r.Results[0].Status).Order());
        }

        var page = await a.PullAsync(Scope, 0, 10, CancellationToken.None);
        Assert.Equal(rounds, Assert.Single(Documents(page)).State.Fields["n"].Value.GetInt64());
    }

    [Fact]
    public async Task Two_nodes_resolving_one_conflict_at_once_keep_the_first_resolution()
    {
        var options = new ConvergeServerOptions().Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual });
        var (a, b) = (await StartNodeAsync(options), await StartNodeAsync(options));
        for (var round = 0; round < 5; round++)
        {
            var (x, y) = (new Device(TimeProvider.System), new Device(TimeProvider.System));
            var id = $"n{round}";
            var created = (await a.PushAsync(x.Batch(x.Put(Scope, "notes", id, 0, """{"title":"original"}""")), "p", [], CancellationToken.None)).Results[0].Revision;
            await a.PushAsync(x.Batch(x.Patch(Scope, "notes", id, created, """{"title":"from x"}""")), "p", [], CancellationToken.None);
            var conflict = (await b.PushAsync(y.Batch(y.Patch(Scope, "notes", id, created, """{"title":"from y"}""")), "p", [], CancellationToken.None)).Results[0].ConflictId!;

            var resolved = await Task.WhenAll(
                Task.Run(() => a.ResolveAsync(conflict, Scope, ResolveChoice.Server, null, CancellationToken.None)),
                Task.Run(() => b.ResolveAsync(conflict, Scope, ResolveChoice.Client, null, CancellationToken.None)));

            // The later one finds the conflict resolved and answers the record as it stands.
            Assert.Equal(resolved[0]!.Resolution, resolved[1]!.Resolution);
            Assert.Equal(resolved[0]!.Revision, resolved[1]!.Revision);
            var title = Documents(await a.PullAsync(Scope, 0, 1000, CancellationToken.None)).Single(d => d.Id == id).State.Fields["title"].Value.GetString();
            Assert.Equal(resolved[0]!.Resolution == "server" ? "from x" : "from y", title);
        }
    }

    [Fact]
    public async Task Nodes_that_start_together_create_the_schema_once_and_share_one_epoch()
    {
        var stores = Enumerable.Range(0, 4).Select(_ => NewStore()).ToArray();

        await Task.WhenAll(stores.Select(s => Task.Run(() => s.InitializeAsync(CancellationToken.None))));

        var epochs = await Task.WhenAll(stores.Select(s => s.ReadEpochAsync(CancellationToken.None)));
        Assert.Single(epochs.Distinct());
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var versions = new NpgsqlCommand("SELECT count(*), max(version) FROM converge.schema_version", connection);
        await using var reader = await versions.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(((long)PostgreSqlSchema.Version, PostgreSqlSchema.Version), (reader.GetInt64(0), reader.GetInt32(1)));
    }

    [Fact]
    public async Task A_database_of_a_newer_schema_version_is_refused_with_a_clear_error()
    {
        await NewStore().InitializeAsync(CancellationToken.None);
        await using (var connection = new NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            await using var newer = new NpgsqlCommand("INSERT INTO converge.schema_version (version) VALUES (99)", connection);
            await newer.ExecuteNonQueryAsync();
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => NewStore().InitializeAsync(CancellationToken.None));
        Assert.Contains("schema version 99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_version_1_database_has_its_client_keys_replaced_by_hashes_the_server_finds_its_devices_by()
    {
        const string Secret = "old-cli-secret-0123456789";
        var hlc = new Protocol.HybridTimestamp(1_700_000_000_000, 1, 1);
        var first = NewStore();
        await first.InitializeAsync(CancellationToken.None);
        await using (var tx = await first.BeginAsync(CancellationToken.None))
        {
            await tx.WriteClientProgressAsync("alice", "0000000000000001", new ClientProgress(5, hlc), Times.Start, CancellationToken.None);
            await tx.WriteClientProgressAsync(Secret, "0000000000000002", new ClientProgress(7, hlc), Times.Start, CancellationToken.None);
            await tx.CommitAsync(CancellationToken.None);
        }

        // What a version 1 database held: no last-used time, keys without a namespace (the old CLI's by the secret).
        await ExecuteAsync("""
            DROP INDEX converge.clients_last_used;
            DROP INDEX converge.conflicts_open;
            ALTER TABLE converge.conflicts DROP COLUMN owner, DROP COLUMN client;
            ALTER TABLE converge.clients DROP COLUMN last_used;
            DELETE FROM converge.schema_version WHERE version >= 2;
            """);
        await first.DisposeAsync();
        _stores.Remove(first);

        var store = NewStore();
        await store.InitializeAsync(CancellationToken.None);

        var alice = new System.Security.Claims.ClaimsPrincipal(new Authentication.ApiKeyIdentity(
            [new(System.Security.Claims.ClaimTypes.NameIdentifier, "alice")], ConvergeAuthentication.ApiKeyScheme, "alice", Authentication.PrincipalIdentity.HashHex("alice-key")));
        var svc = new System.Security.Claims.ClaimsPrincipal(new Authentication.ApiKeyIdentity(
            [new(System.Security.Claims.ClaimTypes.NameIdentifier, "svc")], ConvergeAuthentication.ApiKeyScheme, "svc", Authentication.PrincipalIdentity.HashHex(Secret)));
        await using (var tx = await store.BeginAsync(CancellationToken.None))
        {
            Assert.Equal(5, (await tx.ReadFormerClientProgressAsync(Authentication.PrincipalIdentity.LegacyKeys(alice), "0000000000000001", CancellationToken.None)).LastMutationId);
            Assert.Equal(7, (await tx.ReadFormerClientProgressAsync(Authentication.PrincipalIdentity.LegacyKeys(svc), "0000000000000002", CancellationToken.None)).LastMutationId);
        }

        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var read = new NpgsqlCommand("SELECT principal, last_used > now() - interval '1 hour' FROM converge.clients", connection);
        await using var reader = await read.ExecuteReaderAsync();
        var rows = 0;
        while (await reader.ReadAsync())
        {
            rows++;
            Assert.StartsWith("legacy:", reader.GetString(0), StringComparison.Ordinal);
            Assert.DoesNotContain(Secret, reader.GetString(0), StringComparison.Ordinal);
            Assert.True(reader.GetBoolean(1), "a migrated record counts as used at the migration");
        }

        Assert.Equal(2, rows);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_transaction_whose_statement_failed_cannot_commit()
    {
        var store = NewStore();
        await store.InitializeAsync(CancellationToken.None);
        await using var transaction = await store.BeginAsync(CancellationToken.None);
        await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d"), SyncStoreContract.State(1), null, CancellationToken.None);

        // A read that fails after the pending write went out with it.
        await Assert.ThrowsAnyAsync<Exception>(async () => await transaction.ReadDocumentsAsync([new DocumentKey("s", "c", "nul\0")], new Dictionary<DocumentKey, DocumentState>(), CancellationToken.None));

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await transaction.CommitAsync(CancellationToken.None));
        Assert.Empty((await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None)).Documents);
    }

    [Theory]
    [InlineData("AddConvergePostgreSql, then AddConvergeServer")]
    [InlineData("AddConvergeServer, then AddConvergePostgreSql")]
    [InlineData("AddConvergeServer(…).UsePostgreSql(…)")]
    public async Task The_PostgreSQL_store_registered_in_any_order_serves_pushes_and_pulls_without_a_database_path(string order)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        Action<ConvergeServerOptions> configure = o => o.AddApiKey(TestServer.AliceKey, "alice", "user:alice");
        switch (order)
        {
            case "AddConvergePostgreSql, then AddConvergeServer":
                builder.Services.AddConvergePostgreSql(_connectionString);
                builder.Services.AddConvergePostgreSql(_connectionString);
                builder.Services.AddConvergeServer(configure);
                break;
            case "AddConvergeServer, then AddConvergePostgreSql":
                builder.Services.AddConvergeServer(configure);
                builder.Services.AddConvergePostgreSql(_connectionString);
                builder.Services.AddConvergePostgreSql(_connectionString);
                break;
            default:
                builder.Services.AddConvergeServer(configure).UsePostgreSql(_connectionString).UsePostgreSql(_connectionString);
                break;
        }

        await using var app = builder.Build();
        app.MapConverge("/converge");
        await app.StartAsync();
        Assert.IsType<PostgreSqlSyncStore>(app.Services.GetRequiredService<ISyncStore>());
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address.TrimEnd('/') + "/converge/") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TestServer.AliceKey);
        var device = new Device(TimeProvider.System);

        var pushed = await client.PushAsync(device.Batch(device.Put("user:alice", "notes", "n1", 0, """{"title":"kept in PostgreSQL"}""")));
        var pulled = await client.PullAsync("user:alice");

        Assert.Equal(MutationStatus.Applied, Assert.Single(pushed.Results).Status);
        Assert.Equal("kept in PostgreSQL", Assert.Single(pulled.Changes).State.Fields["title"].Value.GetString());
        Assert.Equal(await app.Services.GetRequiredService<ISyncStore>().ReadEpochAsync(CancellationToken.None), pulled.Epoch);
    }

    [Fact]
    public void The_PostgreSQL_store_registered_again_with_another_connection_string_is_refused()
    {
        var twice = new ServiceCollection().AddConvergePostgreSql("Host=one");
        var server = new ServiceCollection().AddConvergeServer(o => { }).UsePostgreSql("Host=one");

        Assert.Contains("another connection string", Assert.Throws<InvalidOperationException>(() => twice.AddConvergePostgreSql("Host=two")).Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => server.UsePostgreSql("Host=two"));
        Assert.Throws<InvalidOperationException>(() => server.Services.AddConvergePostgreSql("Host=two"));
    }
}
