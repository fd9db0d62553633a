using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Work;
using DataSyncSample;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// An app with its data in a local store: live while it runs and the server is reachable, and synced in the
// background by the unique periodic work DataSyncWork.UniqueName otherwise.
// Start a server first: dotnet run --project src/Converge.Cli -- serve --api-key alice:dev-key=user:alice
var server = new Uri(args.Length > 0 ? args[0] : "http://127.0.0.1:5080");
var dataDirectory = Path.Combine(AppContext.BaseDirectory, "data");
Directory.CreateDirectory(dataDirectory);

await using var client = await ConvergeClient.OpenAsync(new ConvergeClientOptions
{
    DatabasePath = Path.Combine(dataDirectory, "app.db"),
    ServerUrl = server,
    Scopes = { "user:alice" },
    AccessTokenProvider = _ => ValueTask.FromResult<string?>("dev-key"),
});

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddSingleton(client);
builder.Services
    .AddConvergeWork(options =>
    {
        options.DatabasePath = Path.Combine(dataDirectory, "work.db");
        options.DebugMode = true; // log every start and finish, like the plugin's isInDebugMode
    })
    .AddConvergeSync()
    .ExecuteTask(CallbackDispatcher.ExecuteTask);

using var host = builder.Build();
await host.StartAsync();

// The UI's hook: every change, local or from another device, as it happens.
var todos = client.Collection<JsonObject>("todos");
todos.Changed += (_, e) => Console.WriteLine($"{e.Origin} {e.Kind} {e.Id}: {e.Json}");
client.StatusChanged += (_, e) => Console.WriteLine($"sync status: {e.Status}{(e.Error is null ? "" : $" ({e.Error.Message})")}");

// While the app runs: other devices' changes arrive as they commit, and writes leave at once.
client.Live.StatusChanged += (_, e) => Console.WriteLine($"live: {e.Status}{(e.Error is null ? "" : $" ({e.Error.Message})")}");
client.Live.Start();

// Writes work offline; the live connection or the background sync pushes them.
await todos.PutAsync($"todo-{Environment.ProcessId}", new JsonObject { ["title"] = "Buy milk", ["done"] = false });

var workManager = host.Services.GetRequiredService<IWorkManager>();
Console.WriteLine($"{DataSyncWork.UniqueName}: {await workManager.ScheduleDataSyncAsync()}");
await workManager.EnqueueAsync(new OneTimeWorkRequestBuilder(CallbackDispatcher.CleanupTask)
    .SetInputData(WorkData.From(("days", 7)))
    .Build());

await host.WaitForShutdownAsync();
