using System.Runtime.CompilerServices;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Converge.Client;
using Converge.Protocol.Documents;
using Converge.Trimming.App;
using Converge.Work;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

// What an app does with Converge, run in one process so a trimmed or native AOT publish can be checked end to end: a
// server with a Manual collection, two devices with live sync (one signed in with an API key, one with a JWT), a
// conflict resolved by hand, and the background sync ("dataSyncTask") run by the work manager. Prints one line starting
// with "OK" when every step did what it should; otherwise prints what failed and exits with 1.
var folder = Directory.CreateTempSubdirectory("converge-trimming-").FullName;
try
{
    await using var server = await ServerHost.StartAsync(folder);
    await using var a = await OpenDeviceAsync(folder, "a", server.Address, ServerHost.ApiKey);
    await using var b = await OpenDeviceAsync(folder, "b", server.Address, ServerHost.Token());

    // The document type through the options' resolver on one device, and through its metadata on the other.
    var todosA = a.Collection<Todo>("todos");
    var todosB = b.Collection("todos", AppJson.Default.Todo);

    // Live sync: a write on A reaches B's change event.
    a.Live.Start();
    b.Live.Start();
    await Step.Within("A goes live", a.Live.WaitForStatusAsync(LiveStatus.Live, Step.Token));
    await Step.Within("B goes live", b.Live.WaitForStatusAsync(LiveStatus.Live, Step.Token));
    var arrived = new TaskCompletionSource<Todo?>(TaskCreationOptions.RunContinuationsAsynchronously);
    todosB.Changed += (_, e) =>
    {
        if (e.Origin == ChangeOrigin.Remote && e.Id == "t1")
        {
            arrived.TrySetResult(e.Value);
        }
    };
    await todosA.PutAsync("t1", new Todo { Title = "start" });
    var live = await Step.Within("B's change event for A's write", arrived.Task);
    Step.Check(live?.Title == "start", $"B's change event has title '{live?.Title}', not 'start'");

    // A Manual conflict: both devices edit the title offline, then sync.
    await a.Live.StopAsync();
    await b.Live.StopAsync();
    await todosA.PatchAsync("t1", new JsonObject { ["title"] = "Plan A" });
    await todosB.PatchAsync("t1", new JsonObject { ["title"] = "Plan B", ["done"] = true });
    await a.SyncAsync();
    await b.SyncAsync();
    await a.SyncAsync();
    foreach (var (name, device) in new[] { ("A", a), ("B", b) })
    {
        var conflicts = await device.Conflicts.ListAsync();
        Step.Check(conflicts.Count == 1, $"{name} has {conflicts.Count} conflicts, not 1");
        var field = conflicts[0].Fields.Single();
        Step.Check(
            field.Name == "title" && field.Server.Value.GetString() == "Plan A" && field.Client.Value.GetString() == "Plan B",
            $"{name}'s conflict is on '{field.Name}' with server {field.Server.Value} and client {field.Client.Value}");
        var todo = await device.Collection<Todo>("todos").GetAsync("t1");
        Step.Check(todo is { Title: "Plan A", Done: true }, $"{name} holds {JsonSerializer.Serialize(todo, AppJson.Default.Todo)} while the conflict is open");
    }

    var open = (await a.Conflicts.ListAsync())[0];
    await a.Conflicts.ResolveAsync(open.Id, new JsonObject { ["title"] = "Plan A+B" });
    await a.SyncAsync();
    await b.SyncAsync();
    foreach (var (name, device) in new[] { ("A", a), ("B", b) })
    {
        var todo = await device.Collection<Todo>("todos").GetAsync("t1");
        Step.Check(todo is { Title: "Plan A+B", Done: true }, $"{name} holds {JsonSerializer.Serialize(todo, AppJson.Default.Todo)} after the resolution");
        var left = (await device.Conflicts.ListAsync()).Count(c => c.Status == InboxConflictStatus.Open);
        Step.Check(left == 0, $"{name} still has {left} open conflicts after the resolution");
    }

    // Background sync: B writes while not live; the periodic work's first run, due at once, pushes it.
    await todosB.PutAsync("t2", new Todo { Title = "written in the background" });
    var pushed = await RunBackgroundSyncAsync(folder, b);
    Step.Check(pushed == 1, $"the background sync pushed {pushed} writes, not 1");
    await a.SyncAsync();
    var t2 = await todosA.GetAsync("t2");
    Step.Check(t2?.Title == "written in the background", $"A holds '{t2?.Title}' for the background write");

    Console.WriteLine(
        $"OK live sync (API key and JWT), Manual conflict resolved, background sync pushed {pushed} " +
        $"(dynamic code: {(RuntimeFeature.IsDynamicCodeSupported ? "yes" : "no")}, reflection JSON: {(JsonSerializer.IsReflectionEnabledByDefault ? "yes" : "no")})");
    return 0;
}
catch (Exception e)
{
    Console.WriteLine($"FAILED: {e}");
    return 1;
}
finally
{
    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    try
    {
        Directory.Delete(folder, recursive: true);
    }
    catch (IOException)
    {
    }
}

static async Task<ConvergeClient> OpenDeviceAsync(string folder, string name, Uri server, string token) =>
    await ConvergeClient.OpenAsync(new ConvergeClientOptions
    {
        DatabasePath = Path.Combine(folder, name + ".db"),
        ServerUrl = server,
        Scopes = { ServerHost.Scope },
        AccessTokenProvider = _ => ValueTask.FromResult<string?>(token),
        DocumentSerializerOptions = new JsonSerializerOptions(JsonSerializerDefaults.Web) { TypeInfoResolver = AppJson.Default },
    });

// Registers the sync the way docs/client.md shows, on a generic host, and waits for the first period's run.
static async Task<long> RunBackgroundSyncAsync(string folder, ConvergeClient client)
{
    var builder = Host.CreateApplicationBuilder();
    builder.Logging.ClearProviders();
    builder.Services.AddSingleton(client);
    builder.Services
        .AddConvergeWork(o => o.DatabasePath = Path.Combine(folder, "work.db"))
        .AddConvergeSync();
    using var host = builder.Build();
    await host.StartAsync();
    try
    {
        var manager = host.Services.GetRequiredService<IWorkManager>();
        var outcome = await manager.ScheduleDataSyncAsync();
        Step.Check(outcome == UniqueWorkOutcome.Enqueued, $"scheduling the background sync gave {outcome}, not Enqueued");
        WorkInfo? last = null;
        try
        {
            await foreach (var infos in manager.WatchWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName, Step.Token))
            {
                last = infos.SingleOrDefault();
                if (last is { PeriodCount: > 0 })
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        var device = host.Services.GetRequiredService<IDeviceStateMonitor>().Current;
        Step.Check(last is { PeriodCount: > 0 }, $"the background sync did not run within the run's {Step.Timeout.TotalSeconds} s: {Describe(last)}; device state {device}");
        Step.Check(last!.FailureReason is null && last.OutputData.ContainsKey("pushed"), $"the background sync failed: {Describe(last)}");
        return last.OutputData.GetInt64("pushed");
    }
    finally
    {
        await host.StopAsync();
    }
}

static string Describe(WorkInfo? info) => info is null
    ? "no work info"
    : $"state {info.State}, period {info.PeriodCount}, attempts {info.RunAttemptCount}, failure '{info.FailureReason}', output {info.OutputData.ToJson()}";

namespace Converge.Trimming.App
{
    /// <summary>The app's document.</summary>
    internal sealed record Todo
    {
        public string? Title { get; init; }

        public bool Done { get; init; }
    }

    /// <summary>The app's source-generated JSON metadata: trimmed and native AOT apps serialize without reflection.</summary>
    [JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
    [JsonSerializable(typeof(Todo))]
    internal sealed partial class AppJson : JsonSerializerContext;

    /// <summary>A Converge server on Kestrel, 127.0.0.1 and a free port, with the embedded SQLite store, API keys and JWTs.</summary>
    internal sealed class ServerHost(WebApplication app, Uri address) : IAsyncDisposable
    {
        public const string ApiKey = "app-key";

        public const string Scope = "s1";

        private static readonly SymmetricSecurityKey SigningKey = new(Encoding.UTF8.GetBytes("the app's signing key, long enough for HS256"));

        public Uri Address { get; } = address;

        public static async Task<ServerHost> StartAsync(string folder)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Services.AddAuthentication().AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = "app",
                    ValidAudience = "converge",
                    IssuerSigningKey = SigningKey,
                };
            });
            builder.Services.AddConvergeServer(options =>
            {
                options.DatabasePath = Path.Combine(folder, "server.db");
                options.AddApiKey(ApiKey, "app", Scope);
                options.Collection("todos", new CollectionRules { Policy = ConflictPolicy.Manual });
            });
            var app = builder.Build();
            app.MapConverge();
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
            return new ServerHost(app, new Uri(address));
        }

        /// <summary>A token for the scope, valid for an hour, as an identity provider would issue it.</summary>
        public static string Token() => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "app",
            Audience = "converge",
            Subject = new ClaimsIdentity([new Claim("sub", "device-b"), new Claim("converge:scope", Scope)]),
            Expires = DateTime.UtcNow.AddHours(1),
            SigningCredentials = new SigningCredentials(SigningKey, SecurityAlgorithms.HmacSha256),
        });

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>Bounds every wait and turns a wrong result into an error that says what was wrong.</summary>
    internal static class Step
    {
        private static readonly CancellationTokenSource Deadline = new(Timeout);

        public static TimeSpan Timeout => TimeSpan.FromMinutes(2);

        /// <summary>Gets a token that ends every wait once the run has taken <see cref="Timeout"/>.</summary>
        public static CancellationToken Token => Deadline.Token;

        public static async Task Within(string what, Task task)
        {
            try
            {
                await task.WaitAsync(Token);
            }
            catch (OperationCanceledException) when (Token.IsCancellationRequested)
            {
                throw new TimeoutException($"{what}: not done within the run's {Timeout.TotalSeconds} s");
            }
        }

        public static async Task<T> Within<T>(string what, Task<T> task)
        {
            await Within(what, (Task)task);
            return await task;
        }

        public static void Check(bool condition, string failure)
        {
            if (!condition)
            {
                throw new InvalidOperationException(failure);
            }
        }
    }
}
