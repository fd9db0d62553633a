using System.Globalization;
using System.Text.Json.Nodes;
using Converge.Client;

// Usage: <db> <server url> <api key> <scope> <count>
// Writes <count> documents, one transaction each, prints "written <count>", then waits to be killed without syncing.
var options = new ConvergeClientOptions
{
    DatabasePath = args[0],
    ServerUrl = new Uri(args[1]),
    AccessTokenProvider = _ => ValueTask.FromResult<string?>(args[2]),
};
options.Scopes.Add(args[3]);
var count = int.Parse(args[4], CultureInfo.InvariantCulture);
var client = await ConvergeClient.OpenAsync(options);
var notes = client.Collection<JsonObject>("notes");
for (var i = 0; i < count; i++)
{
    await notes.PutAsync($"n{i:D4}", new JsonObject { ["title"] = $"written offline {i}", ["n"] = i });
}

Console.WriteLine($"written {count}");
await Task.Delay(Timeout.Infinite);
