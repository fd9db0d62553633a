using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Claims;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Storage;
using Converge.Server.Storage.Sqlite;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Converge.Server.Tests;

public class HostingTests
{
    [Fact]
    public async Task Invalid_options_stop_the_host_at_start_with_every_problem_named()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddConvergeServer(o =>
        {
            o.MaxPullLimit = 0;
            o.RequestBodyTimeout = TimeSpan.Zero;
            o.MaxBytesInFlightPerPrincipal = 1024;
            o.Collection("c", new CollectionRules { Policy = ConflictPolicy.Custom });
            o.ApiKeys["k"] = new ConvergeApiKey("", []);
        });
        await using var app = builder.Build();
        app.MapConverge();

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("DatabasePath", e.Message, StringComparison.Ordinal);
        Assert.Contains("MaxPullLimit", e.Message, StringComparison.Ordinal);
        Assert.Contains("RequestBodyTimeout", e.Message, StringComparison.Ordinal);
        Assert.Contains("MaxBytesInFlightPerPrincipal must be at least MaxBytesInFlightPerConnection", e.Message, StringComparison.Ordinal);
        Assert.Contains("Collection 'c'", e.Message, StringComparison.Ordinal);
        Assert.Contains("principal name", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_store_registered_after_the_server_replaces_the_embedded_one_which_then_needs_no_database_path()
    {
        var directory = Directory.CreateTempSubdirectory("converge-server-store-").FullName;
        var path = Path.Combine(directory, "own.db");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddConvergeServer(o => o.AddApiKey(TestServer.AliceKey, "alice", "user:alice"));
        builder.Services.AddSingleton<ISyncStore>(_ => new TestStore(new SqliteSyncStore(path, SynchronousMode.Normal)));
        await using (var app = builder.Build())
        {
            app.MapConverge();
            await app.StartAsync();

            Assert.IsType<TestStore>(app.Services.GetRequiredService<ISyncStore>());
            Assert.True(File.Exists(path));
            await app.StopAsync();
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Mapping_without_the_services_says_what_to_call()
    {
        var builder = WebApplication.CreateSlimBuilder();
        await using var app = builder.Build();

        var e = Assert.Throws<InvalidOperationException>(() => app.MapConverge());

        Assert.Contains("AddConvergeServer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Adding_the_server_twice_registers_it_once_and_merges_the_configuration()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, build: b => b.Services.AddConvergeServer(o => o.AddApiKey("second-key-0123456789", "dave", "user:dave")));
        using var dave = server.CreateClient("second-key-0123456789");
        var device = new Device(time);

        Assert.Equal(MutationStatus.Applied, (await dave.PushAsync(device.Batch(device.Put("user:dave", "n", "n", 0, """{"a":1}""")))).Results[0].Status);
        Assert.Empty((await server.Alice.PullAsync("user:alice")).Changes);
        Assert.Single(server.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Hosting.ConvergeServerLifetime>());
    }

    [Fact]
    public async Task A_second_server_on_the_same_file_fails_clearly()
    {
        var time = Times.NewFake();
        await using var first = await TestServer.StartAsync(time);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServer.StartAsync(time, directory: first.Directory));

        Assert.Contains("in use by another server", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_store_of_a_newer_schema_is_refused_clearly()
    {
        var directory = Directory.CreateTempSubdirectory("converge-server-schema-").FullName;
        var path = Path.Combine(directory, "s.db");
        using (var store = new SqliteSyncStore(path, SynchronousMode.Normal))
        {
            await store.InitializeAsync(CancellationToken.None);
        }

        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE meta SET value = '99' WHERE key = 'schema_version';";
            command.ExecuteNonQuery();
        }

        using var newer = new SqliteSyncStore(path, SynchronousMode.Full);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => newer.InitializeAsync(CancellationToken.None));
        Assert.Contains("schema version 99", e.Message, StringComparison.Ordinal);
        newer.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }

    [Theory]
    [InlineData(-1, "Update Converge.Server.Tests to the version of Converge.Server.")]
    [InlineData(1, "Update Converge.Server to the version of Converge.Server.Tests.")]
    public async Task A_store_built_for_another_store_contract_stops_the_host_at_start_naming_the_package_to_update(int offset, string advice)
    {
        var time = Times.NewFake();
        var directory = Directory.CreateTempSubdirectory("converge-server-contract-").FullName;
        var version = SyncStoreContract.Version + offset;

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServer.StartAsync(time, directory: directory, build: b => b.Services.AddSingleton<ISyncStore>(sp =>
            new TestStore(new SqliteSyncStore(sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value.DatabasePath, SynchronousMode.Normal)) { ContractVersion = version })));

        Assert.Contains($"TestStore (Converge.Server.Tests ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"implements version {version} of the store contract", e.Message, StringComparison.Ordinal);
        Assert.Contains(advice, e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory, "sync.db")), "The store is refused before it opens anything.");
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_store_that_cannot_load_against_this_server_stops_the_host_at_start_naming_the_package_to_update()
    {
        var time = Times.NewFake();
        var directory = Directory.CreateTempSubdirectory("converge-server-contract-").FullName;

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServer.StartAsync(time, directory: directory, build: b => b.Services.AddSingleton<ISyncStore>(
            _ => throw new TypeLoadException("Method 'ReadChangesAsync' in type 'PostgreSqlSyncStore' does not have an implementation."))));

        Assert.Contains("cannot be loaded by Converge.Server ", e.Message, StringComparison.Ordinal);
        Assert.Contains("Update the store's package (for example Converge.Server.PostgreSql)", e.Message, StringComparison.Ordinal);
        Assert.IsType<TypeLoadException>(e.InnerException);
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task The_base_path_is_configurable()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, basePath: "/api/sync/");
        var device = new Device(time);

        await server.Alice.PushAsync(device.Batch(device.Put("user:alice", "n", "n", 0, """{"a":1}""")));

        Assert.EndsWith("/api/sync/", server.Address.AbsolutePath, StringComparison.Ordinal);
        Assert.Single((await server.Alice.PullAsync("user:alice")).Changes);
    }

    [Fact]
    public async Task An_app_scope_authorizer_replaces_the_claims_one_and_tells_reads_from_writes()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, build: b => b.Services.AddSingleton<IScopeAuthorizer>(new ReadOnlyAuthorizer()));
        var device = new Device(time);

        using var push = await server.Alice.PostAsync("v1/push", Api.Json(device.Batch(device.Put("public:news", "n", "n", 0, """{"a":1}"""))));
        var pull = await server.Alice.PullAsync("public:news");

        await Api.AssertProblemAsync(push, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
        Assert.Empty(pull.Changes);
    }

    [Fact]
    public async Task Health_answers_503_when_the_store_does_not()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, build: b => b.Services.AddSingleton<ISyncStore>(sp =>
            new TestStore(new SqliteSyncStore(sp.GetRequiredService<IOptions<ConvergeServerOptions>>().Value.DatabasePath, SynchronousMode.Normal)) { HealthFails = true }));

        using var health = await server.Anonymous.GetAsync("v1/health");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var body = System.Text.Json.JsonSerializer.Deserialize(await health.Content.ReadAsByteArrayAsync(), ProtocolJson.HealthResponse)!;
        Assert.Equal("unavailable", body.Status);
    }

    [Fact]
    public async Task Metrics_count_pushes_mutations_by_status_and_pulls()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var measurements = new ConcurrentBag<(string Name, long Value, string? Status)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Converge.Server" && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? status = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "status")
                {
                    status = (string?)tag.Value;
                }
            }

            measurements.Add((instrument.Name, value, status));
        });
        listener.Start();
        var device = new Device(time);
        var batch = device.Batch(device.Put("user:alice", "n", "a", 0, """{"a":1}"""), device.Put("user:alice", "n", "b", 0, """{"a":1}"""));

        await server.Alice.PushAsync(batch);
        await server.Alice.PushAsync(batch);
        await server.Alice.PullAsync("user:alice");

        long Sum(string name, string? status = null) => measurements.Where(m => m.Name == name && (status is null || m.Status == status)).Sum(m => m.Value);
        Assert.Equal(2, Sum("converge.server.pushes"));
        Assert.Equal(2, Sum("converge.server.mutations", "applied"));
        Assert.Equal(2, Sum("converge.server.mutations", "duplicate"));
        Assert.Equal(1, Sum("converge.server.pulls"));
        Assert.Equal(2, Sum("converge.server.documents_pulled"));
    }

    [Fact]
    public async Task Logs_never_carry_document_contents()
    {
        var time = Times.NewFake();
        var logs = new ConcurrentQueue<string>();
        await using var server = await TestServer.StartAsync(
            time,
            o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }),
            b => b.Logging.AddProvider(new ListLoggerProvider(logs)).SetMinimumLevel(LogLevel.Trace));
        var a = new Device(time);
        var b = new Device(time);
        await server.Alice.PushAsync(a.Batch(a.Put("team:1", "notes", "n", 0, """{"t":"SECRET-0"}""")));
        await server.Alice.PushAsync(a.Batch(a.Patch("team:1", "notes", "n", 1, """{"t":"SECRET-A"}""")));
        var conflict = await server.Bob.PushAsync(b.Batch(b.Patch("team:1", "notes", "n", 1, """{"t":"SECRET-B"}""")));
        await server.Alice.ResolveAsync(conflict.Results[0].ConflictId!, new ResolveConflictRequest { Choice = "edited", Fields = Device.Fields("""{"t":"SECRET-E"}""") });
        await server.Alice.PullAllAsync("team:1");
        using var refused = await server.Alice.PostAsync("v1/push", Api.Raw("""{"client":"SECRET-X"}"""));

        Assert.Contains(logs, l => l.Contains("Conflict", StringComparison.Ordinal));
        Assert.DoesNotContain(logs, l => l.Contains("SECRET", StringComparison.Ordinal));
    }

    private sealed class ReadOnlyAuthorizer : IScopeAuthorizer
    {
        public ValueTask<bool> IsAllowedAsync(ClaimsPrincipal principal, string scope, ScopeAccess access, CancellationToken cancellationToken) =>
            ValueTask.FromResult(scope.StartsWith("public:", StringComparison.Ordinal) && access == ScopeAccess.Read);
    }

    /// <summary>The SQLite store behind the contract, with a contract version and a health check the test chooses.</summary>
    private sealed class TestStore(SqliteSyncStore inner) : ISyncStore, IDisposable
    {
        public int ContractVersion { get; init; } = SyncStoreContract.Version;

        public bool HealthFails { get; init; }

        public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

        public Task<Protocol.HybridTimestamp?> ReadClockAsync(CancellationToken cancellationToken) => inner.ReadClockAsync(cancellationToken);

        public Task<string> ReadEpochAsync(CancellationToken cancellationToken) => inner.ReadEpochAsync(cancellationToken);

        public Task<string> RotateEpochAsync(CancellationToken cancellationToken) => inner.RotateEpochAsync(cancellationToken);

        public Task<ISyncTransaction> BeginAsync(CancellationToken cancellationToken) => inner.BeginAsync(cancellationToken);

        public Task<ChangePage> ReadChangesAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) => inner.ReadChangesAsync(scope, after, limit, maxBytes, cancellationToken);

        public Task<ConflictPage> ReadOpenConflictsAsync(string scope, long after, int limit, int maxBytes, CancellationToken cancellationToken) => inner.ReadOpenConflictsAsync(scope, after, limit, maxBytes, cancellationToken);

        public Task<ConflictRecord?> ReadConflictAsync(string id, CancellationToken cancellationToken) => inner.ReadConflictAsync(id, cancellationToken);

        public Task<CompactionResult> CompactAsync(DateTimeOffset removeBefore, DateTimeOffset clientsUnusedBefore, CancellationToken cancellationToken) =>
            inner.CompactAsync(removeBefore, clientsUnusedBefore, cancellationToken);

        public Task CheckHealthAsync(CancellationToken cancellationToken) => HealthFails ? throw new IOException("disk gone") : inner.CheckHealthAsync(cancellationToken);

        public void Dispose() => inner.Dispose();
    }

    private sealed class ListLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(lines);

        public void Dispose()
        {
        }

        private sealed class ListLogger(ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue(formatter(state, exception) + exception);
        }
    }
}
