using System.Diagnostics;
using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Protocol.Documents;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>The sync half of `converge demo`: two devices editing offline, syncing live and settling a conflict, on an embedded server.</summary>
internal static partial class DemoCommand
{
    private sealed partial class Demo
    {
        private const string Scope = "team:demo";
        private const string Key = "demo-key";

        private async Task SyncAsync(string directory, CancellationToken ct)
        {
            AnsiConsole.Write(new Rule("1. Sync: a server on SQLite, two devices editing offline").LeftJustified());
            var rules = new Dictionary<string, CollectionRules>
            {
                ["todos"] = CollectionRules.Default, // last writer wins per field, delete wins
                ["notes"] = new() { Policy = ConflictPolicy.Manual },
            };
            var (app, address) = await ServerHost.StartAsync(
                Path.Combine(directory, "server.db"), "http://127.0.0.1:0", [new ApiKeySetting("demo", Key, [Scope])], rules, LogLevel.None, ct);
            await using var server = app;
            AnsiConsole.MarkupLine($"{At()} server on {address} (todos: LastWriterWins, notes: Manual)");

            await using var phone = await OpenDeviceAsync(directory, "phone", address, ct);
            await using var laptop = await OpenDeviceAsync(directory, "laptop", address, ct);
            var phoneTodos = phone.Collection<JsonObject>("todos");
            var laptopTodos = laptop.Collection<JsonObject>("todos");

            await phoneTodos.PutAsync("milk", new JsonObject { ["title"] = "Buy milk", ["done"] = false, ["likes"] = 0 }, ct);
            await phoneTodos.PutAsync("call", new JsonObject { ["title"] = "Call Bob", ["done"] = false }, ct);
            await phoneTodos.PutAsync("old", new JsonObject { ["title"] = "Renew passport", ["done"] = false }, ct);
            await phone.Collection<JsonObject>("notes").PutAsync("plan", new JsonObject { ["text"] = "Draft", ["author"] = "phone" }, ct);
            await phone.SyncAsync(null, ct);
            await laptop.SyncAsync(null, ct);
            AnsiConsole.MarkupLine($"{At()} both devices hold 3 todos and 1 note; now both go offline");

            // Offline edits on both devices.
            await phoneTodos.PatchAsync("milk", new JsonObject { ["done"] = true }, ct);
            await laptopTodos.PatchAsync("milk", new JsonObject { ["title"] = "Buy oat milk" }, ct);
            await phoneTodos.PatchAsync("call", new JsonObject { ["title"] = "Call Bob at 5" }, ct);
            await NextMillisecondAsync(ct); // so the laptop's edit is the later one by the clock, not by a tie-break
            await laptopTodos.PatchAsync("call", new JsonObject { ["title"] = "Call Bob tomorrow" }, ct);
            await phoneTodos.DeleteAsync("old", ct);
            await laptopTodos.PatchAsync("old", new JsonObject { ["title"] = "Renew passport (urgent)" }, ct);
            await phoneTodos.IncrementAsync("milk", "likes", 2, ct);
            await laptopTodos.IncrementAsync("milk", "likes", 3, ct);
            await phone.Collection<JsonObject>("notes").PatchAsync("plan", new JsonObject { ["text"] = "Plan A: ship Friday" }, ct);
            await laptop.Collection<JsonObject>("notes").PatchAsync("plan", new JsonObject { ["text"] = "Plan B: ship Monday" }, ct);
            AnsiConsole.MarkupLine($"{At()} offline edits: phone {await phone.GetPendingCountAsync(ct)} pending, laptop {await laptop.GetPendingCountAsync(ct)} pending");

            var phoneReport = await phone.SyncAsync(null, ct);
            var laptopReport = await laptop.SyncAsync(null, ct);
            await phone.SyncAsync(null, ct);
            AnsiConsole.MarkupLine($"{At()} synced: phone pushed {phoneReport.Pushed}, laptop pushed {laptopReport.Pushed} and got {laptopReport.ConflictsOpened} conflict(s) for a person");

            var milk = await laptopTodos.GetAsync("milk", ct);
            var call = await laptopTodos.GetAsync("call", ct);
            var old = await laptopTodos.GetAsync("old", ct);
            var note = await laptop.Collection<JsonObject>("notes").GetAsync("plan", ct);
            var table = new Table().RoundedBorder().Title("What each concurrent edit became")
                .AddColumn("document").AddColumn("phone (offline)").AddColumn("laptop (offline)").AddColumn("rule").AddColumn("result");
            table.AddRow("todos/milk", "done = true", "title = \"Buy oat milk\"", "different fields merge", Markup.Escape($"title \"{milk?["title"]}\", done {milk?["done"]}"));
            table.AddRow("todos/call", "title = \"Call Bob at 5\"", "title = \"Call Bob tomorrow\" (later)", "LastWriterWins (field HLC)", Markup.Escape($"title \"{call?["title"]}\""));
            table.AddRow("todos/old", "delete", "title = \"… (urgent)\"", "delete wins", old is null ? "deleted" : "still there");
            table.AddRow("todos/milk.likes", "+2", "+3", "counters add", Markup.Escape($"likes {milk?["likes"]}"));
            table.AddRow("notes/plan", "text = \"Plan A…\"", "text = \"Plan B…\"", "Manual: waits for a person", Markup.Escape($"text \"{note?["text"]}\" + 1 open conflict"));
            AnsiConsole.Write(table);

            Check("different fields of one todo merge", milk?["title"]?.GetValue<string>() == "Buy oat milk" && milk["done"]?.GetValue<bool>() == true, $"{milk?.ToJsonString()}");
            Check("the same field: the later write wins", call?["title"]?.GetValue<string>() == "Call Bob tomorrow", $"{call?["title"]}");
            Check("a delete wins over a concurrent edit", old is null, old is null ? "deleted on both" : "still present");
            Check("counters add up", milk?["likes"]?.GetValue<long>() == 5, $"likes = {milk?["likes"]}");

            // A person resolves the Manual conflict on the laptop.
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Rule("2. A person resolves the Manual conflict").LeftJustified());
            var conflicts = await laptop.Conflicts.ListAsync(ct);
            var open = conflicts.Where(c => c.Status == InboxConflictStatus.Open).ToList();
            foreach (var c in open)
            {
                foreach (var f in c.Fields)
                {
                    AnsiConsole.MarkupLine(Markup.Escape($"{At()} conflict on {c.Collection}/{c.DocumentId}.{f.Name}: base {f.Base?.GetRawText() ?? "-"}, server {f.Server.Value.GetRawText()}, laptop {f.Client.Value.GetRawText()}"));
                }
            }

            Check("the Manual conflict reaches the devices", open.Count == 1 && (await phone.Conflicts.ListAsync(ct)).Count(c => c.Status == InboxConflictStatus.Open) == 1, $"{open.Count} open on the laptop");
            if (open.Count == 1)
            {
                await laptop.Conflicts.ResolveAsync(open[0].Id, new JsonObject { ["text"] = "Plan A+B: ship Friday, polish Monday" }, ct);
                AnsiConsole.MarkupLine($"{At()} the laptop's user merges both plans; the resolution syncs like any write");
            }

            await laptop.SyncAsync(null, ct);
            await phone.SyncAsync(null, ct);
            var resolved = await phone.Collection<JsonObject>("notes").GetAsync("plan", ct);
            Check("the resolution reaches the other device", resolved?["text"]?.GetValue<string>() == "Plan A+B: ship Friday, polish Monday"
                && !(await phone.Conflicts.ListAsync(ct)).Any(c => c.Status == InboxConflictStatus.Open), $"phone: {resolved?["text"]}");

            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Rule("3. Live: both devices online, each change crosses as it is made").LeftJustified());
            phone.Live.Start();
            laptop.Live.Start();
            await phone.Live.WaitForStatusAsync(LiveStatus.Live, ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            await laptop.Live.WaitForStatusAsync(LiveStatus.Live, ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            AnsiConsole.MarkupLine($"{At()} phone and laptop are live: no sync calls from here");
            var phoneNotes = phone.Collection<JsonObject>("notes");
            var laptopNotes = laptop.Collection<JsonObject>("notes");
            var latencies = new List<double>();
            for (var i = 1; i <= 20; i++)
            {
                var text = $"typed on the phone, take {i}";
                var seen = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                EventHandler<DocumentChangedEventArgs<JsonObject>> arrived = (_, e) =>
                {
                    if (e.Id == "live" && e.Origin == ChangeOrigin.Remote && e.Value?["text"]?.GetValue<string>() == text)
                    {
                        seen.TrySetResult(Stopwatch.GetTimestamp());
                    }
                };
                laptopNotes.Changed += arrived;
                var typed = Stopwatch.GetTimestamp();
                await phoneNotes.PutAsync("live", new JsonObject { ["text"] = text }, ct);
                var shown = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30), ct);
                laptopNotes.Changed -= arrived;
                latencies.Add(Stopwatch.GetElapsedTime(typed, shown).TotalMilliseconds);
            }

            latencies.Sort();
            var median = latencies[latencies.Count / 2];
            AnsiConsole.MarkupLine($"{At()} the phone types 20 times; the laptop shows each change [bold]{median:0.0} ms[/] later (median; slowest {latencies[^1]:0.0} ms)");
            var live = await laptopNotes.GetAsync("live", ct);
            Check("a live change reaches the other device", live?["text"]?.GetValue<string>() == "typed on the phone, take 20", $"median {median:0.0} ms from the phone's write to the laptop's change event");
            await phone.Live.StopAsync();
            await laptop.Live.StopAsync();
            await phone.SyncAsync(null, ct);
            await laptop.SyncAsync(null, ct);

            // Every replica, and a new device that downloads everything, ends identical.
            await using var tablet = await OpenDeviceAsync(directory, "tablet", address, ct);
            await tablet.SyncAsync(null, ct);
            var snapshots = new List<string>();
            foreach (var device in new[] { phone, laptop, tablet })
            {
                snapshots.Add(await SnapshotAsync(device, ct));
            }

            AnsiConsole.MarkupLine($"{At()} phone, laptop and a new tablet compared document by document");
            Check("every replica ended identical", snapshots.Distinct(StringComparer.Ordinal).Count() == 1 && await phone.GetPendingCountAsync(ct) == 0 && await laptop.GetPendingCountAsync(ct) == 0,
                $"{snapshots[0].Length} bytes of documents on each of 3 devices");
            await server.StopAsync(ct);
            AnsiConsole.WriteLine();
        }

        private static async Task NextMillisecondAsync(CancellationToken ct)
        {
            var now = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
            while (TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() <= now)
            {
                await Task.Delay(1, ct);
            }
        }

        private static Task<ConvergeClient> OpenDeviceAsync(string directory, string name, Uri server, CancellationToken ct)
        {
            var options = new ConvergeClientOptions
            {
                DatabasePath = Path.Combine(directory, name + ".db"),
                ServerUrl = server,
                AccessTokenProvider = _ => ValueTask.FromResult<string?>(Key),
            };
            options.Scopes.Add(Scope);
            return ConvergeClient.OpenAsync(options, ct);
        }

        private static async Task<string> SnapshotAsync(ConvergeClient device, CancellationToken ct)
        {
            var all = new JsonObject();
            foreach (var collection in new[] { "todos", "notes" })
            {
                var page = await device.Collection<JsonObject>(collection).Query().OrderById().Limit(1000).ToPageAsync(ct);
                foreach (var doc in page.Items)
                {
                    all[$"{collection}/{doc.Id}"] = new JsonObject(doc.Value.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));
                }
            }

            return all.ToJsonString();
        }
    }
}
