using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Server.Tests;

/// <summary>A real Converge server on Kestrel, 127.0.0.1 and a free port, over a SQLite file in a temp folder.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    public const string AliceKey = "alice-key-0123456789";
    public const string BobKey = "bob-key-0123456789";
    public const string MalloryKey = "mallory-key-0123456789";

    private readonly WebApplication _app;
    private readonly bool _ownsDirectory;

    private TestServer(WebApplication app, string directory, bool ownsDirectory, Uri address)
    {
        _app = app;
        Directory = directory;
        _ownsDirectory = ownsDirectory;
        Address = address;
        Alice = CreateClient(AliceKey);
        Bob = CreateClient(BobKey);
        Mallory = CreateClient(MalloryKey);
        Anonymous = CreateClient(null);
    }

    public string Directory { get; }

    public string DatabasePath => Path.Combine(Directory, "sync.db");

    public Uri Address { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Gets a client signed in as alice: scopes user:alice and team:*.</summary>
    public HttpClient Alice { get; }

    /// <summary>Gets a client signed in as bob: scopes user:bob and team:*.</summary>
    public HttpClient Bob { get; }

    /// <summary>Gets a client signed in as mallory: scope user:mallory only.</summary>
    public HttpClient Mallory { get; }

    public HttpClient Anonymous { get; }

    public static Task<TestServer> StartAsync(
        FakeTimeProvider? time = null,
        Action<ConvergeServerOptions>? configure = null,
        Action<WebApplicationBuilder>? build = null,
        string? directory = null,
        string basePath = "/converge",
        string? postgres = null) =>
        StartCoreAsync(time, configure, build, directory, basePath, postgres);

    private static async Task<TestServer> StartCoreAsync(
        FakeTimeProvider? time,
        Action<ConvergeServerOptions>? configure,
        Action<WebApplicationBuilder>? build,
        string? directory,
        string basePath,
        string? postgres)
    {
        var owns = directory is null;
        directory ??= System.IO.Directory.CreateTempSubdirectory("converge-server-test-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        if (time is not null)
        {
            builder.Services.AddSingleton<TimeProvider>(time);
        }

        var path = Path.Combine(directory, "sync.db");
        if (postgres is not null)
        {
            builder.Services.AddConvergePostgreSql(postgres);
        }

        builder.Services.AddConvergeServer(o =>
        {
            o.DatabasePath = path;
            o.AddApiKey(AliceKey, "alice", "user:alice", "team:*");
            o.AddApiKey(BobKey, "bob", "user:bob", "team:*");
            o.AddApiKey(MalloryKey, "mallory", "user:mallory");
            configure?.Invoke(o);
        });
        build?.Invoke(builder);
        var app = builder.Build();
        app.MapConverge(basePath);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestServer(app, directory, owns, new Uri(address.TrimEnd('/') + basePath.TrimEnd('/') + "/"));
    }

    public HttpClient CreateClient(string? token)
    {
        var client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    /// <summary>Stops the server and releases the file, keeping the folder for a restart.</summary>
    public async Task StopAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
    }

    public async ValueTask DisposeAsync()
    {
        Alice.Dispose();
        Bob.Dispose();
        Mallory.Dispose();
        Anonymous.Dispose();
        try
        {
            await StopAsync();
        }
        catch (ObjectDisposedException)
        {
            // Already stopped by the test.
        }

        if (_ownsDirectory)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>HTTP calls of the protocol, through its source-generated JSON.</summary>
internal static class Api
{
    public static HttpContent Json(PushRequest request) => Raw(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.PushRequest));

    public static HttpContent Raw(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    public static HttpContent Raw(string body) => Raw(Encoding.UTF8.GetBytes(body));

    public static async Task<PushResponse> PushAsync(this HttpClient client, PushRequest request)
    {
        using var response = await client.PostAsync("v1/push", Json(request));
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync(ProtocolJson.PushResponse))!;
    }

    public static async Task<PullResponse> PullAsync(this HttpClient client, string scope, long after = 0, int? limit = null)
    {
        using var response = await client.GetAsync(PullUri(scope, after, limit));
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync(ProtocolJson.PullResponse))!;
    }

    public static string PullUri(string scope, long after = 0, int? limit = null) =>
        $"v1/pull?scope={Uri.EscapeDataString(scope)}&after={after}" + (limit is { } l ? $"&limit={l}" : "");

    /// <summary>Pulls a scope to the end, following cursors, and returns every page.</summary>
    public static async Task<List<PullResponse>> PullAllAsync(this HttpClient client, string scope, long after = 0, int? limit = null)
    {
        var pages = new List<PullResponse>();
        while (true)
        {
            var page = await client.PullAsync(scope, after, limit);
            pages.Add(page);
            after = page.Cursor;
            if (!page.HasMore)
            {
                return pages;
            }

            Assert.True(pages.Count < 10_000, "Paging does not end.");
        }
    }

    /// <summary>Reads everything a scope holds, as comparable text: documents and conflict records, without clocks.</summary>
    public static async Task<string> SnapshotAsync(this HttpClient client, string scope)
    {
        var pages = await client.PullAllAsync(scope);
        var documents = pages.SelectMany(p => p.Changes).OrderBy(c => c.State.Revision).ToList();
        var conflicts = pages.SelectMany(p => p.Conflicts ?? []).OrderBy(c => c.Revision).ToList();
        return string.Join("\n", documents.Select(d => JsonSerializer.Serialize(d.State, ProtocolJson.DocumentState)))
            + "\n--\n" + string.Join("\n", conflicts.Select(c => JsonSerializer.Serialize(c, ProtocolJson.ConflictRecord)));
    }

    public static async Task<IReadOnlyList<ConflictRecord>> ConflictsAsync(this HttpClient client, string scope)
    {
        using var response = await client.GetAsync($"v1/conflicts?scope={Uri.EscapeDataString(scope)}");
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync(ProtocolJson.ConflictRecords))!;
    }

    public static Task<HttpResponseMessage> ResolveRawAsync(this HttpClient client, string id, ResolveConflictRequest request) =>
        client.PostAsync($"v1/conflicts/{Uri.EscapeDataString(id)}/resolve", Raw(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.ResolveConflictRequest)));

    public static async Task<ConflictRecord> ResolveAsync(this HttpClient client, string id, ResolveConflictRequest request)
    {
        using var response = await client.ResolveRawAsync(id, request);
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync(ProtocolJson.ConflictRecord))!;
    }

    /// <summary>Asserts a problem response: status, content type and code.</summary>
    public static async Task<string> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {status}, got {response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(body);
        Assert.Equal(code, json.RootElement.GetProperty("code").GetString());
        Assert.Equal((int)status, json.RootElement.GetProperty("status").GetInt32());
        return body;
    }

    private static async Task EnsureAsync(HttpResponseMessage response)
    {
        if (!response.IsSuccessStatusCode)
        {
            Assert.Fail($"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }

    public static async Task<T?> ReadFromJsonAsync<T>(this HttpContent content, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
    {
        var bytes = await content.ReadAsByteArrayAsync();
        return JsonSerializer.Deserialize(bytes, typeInfo);
    }
}

/// <summary>A simulated device: a replica id, a hybrid clock, and increasing mutation ids.</summary>
internal sealed class Device
{
    private long _nextId;

    public Device(TimeProvider time, ulong? node = null)
    {
        Node = node ?? ReplicaId.NewId();
        Clock = new HybridClock(Node, time);
    }

    public ulong Node { get; }

    public string Id => ReplicaId.Format(Node);

    public HybridClock Clock { get; }

    public Mutation Put(string scope, string collection, string doc, long baseRevision, string fieldsJson) =>
        Make(scope, collection, doc, MutationKind.Put, baseRevision, fieldsJson);

    public Mutation Patch(string scope, string collection, string doc, long baseRevision, string fieldsJson, params string[] remove) =>
        Make(scope, collection, doc, MutationKind.Patch, baseRevision, fieldsJson) with { Remove = remove.Length > 0 ? remove : null };

    public Mutation Increment(string scope, string collection, string doc, string fieldsJson) =>
        Make(scope, collection, doc, MutationKind.Increment, 0, fieldsJson);

    public Mutation Delete(string scope, string collection, string doc, long baseRevision) =>
        Make(scope, collection, doc, MutationKind.Delete, baseRevision, null);

    public Mutation Resolve(string scope, string collection, string doc, string conflictId, string fieldsJson) =>
        Make(scope, collection, doc, MutationKind.Resolve, 0, fieldsJson) with { ConflictId = conflictId };

    public PushRequest Batch(params Mutation[] mutations) => new() { ClientId = Id, Clock = Clock.Now(), Mutations = mutations };

    private Mutation Make(string scope, string collection, string doc, MutationKind kind, long baseRevision, string? fieldsJson) => new()
    {
        Id = ++_nextId,
        Scope = scope,
        Collection = collection,
        DocumentId = doc,
        Kind = kind,
        Hlc = Clock.Now(),
        BaseRevision = baseRevision,
        Fields = fieldsJson is null ? null : Fields(fieldsJson),
    };

    public static Dictionary<string, JsonElement> Fields(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
    }
}

internal static class Times
{
    public static readonly DateTimeOffset Start = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static FakeTimeProvider NewFake() => new(Start);
}
