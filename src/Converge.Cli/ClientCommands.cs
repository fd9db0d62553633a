using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Protocol.Messages;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>`converge client ...`: script one replica against a server, for operators and black-box tests.</summary>
/// <remarks>Exit codes: 0 done, 1 not found (get), 2 bad input (including an unknown conflict), 3 the server refused (sync), 4 the server is unreachable (sync).</remarks>
internal static class ClientCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var client = new Command("client", "Script one replica (a local store) against a Converge server.");
        client.Subcommands.Add(Put());
        client.Subcommands.Add(Patch());
        client.Subcommands.Add(Delete());
        client.Subcommands.Add(Get());
        client.Subcommands.Add(List());
        client.Subcommands.Add(Sync());
        client.Subcommands.Add(Conflicts());
        client.Subcommands.Add(Resolve());
        client.Subcommands.Add(Status());
        client.Subcommands.Add(Watch());
        return client;
    }

    /// <summary>The options every client command shares.</summary>
    private sealed class Replica
    {
        public Option<FileInfo> Db { get; } = new("--db") { Description = "The replica's local SQLite store (created when missing).", Required = true };

        public Replica()
        {
            Server.Validators.Add(result =>
            {
                if (!TryParseServer(result.GetValueOrDefault<string?>(), out _))
                {
                    result.AddError("--server must be an absolute http or https URL, for example http://127.0.0.1:5080.");
                }
            });
        }

        public Option<string?> Server { get; } = new("--server") { Description = "The server, for example http://127.0.0.1:5080." };

        public Uri? ServerUrl(ParseResult parse) => TryParseServer(parse.GetValue(Server), out var url) ? url : null;

        private static bool TryParseServer(string? text, out Uri? url)
        {
            url = null;
            return text is null || (Uri.TryCreate(text, UriKind.Absolute, out url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps));
        }

        public Option<string?> Key { get; } = new("--key") { Description = "The API key or JWT sent as a bearer token." };

        public Option<string[]> Scopes { get; } = new("--scope")
        {
            Description = "A scope the replica syncs (repeatable); the first is where new documents go.",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };

        public void AddTo(Command command)
        {
            command.Options.Add(Db);
            command.Options.Add(Server);
            command.Options.Add(Key);
            command.Options.Add(Scopes);
        }

        public Task<ConvergeClient> OpenAsync(ParseResult parse, CancellationToken ct)
        {
            var key = parse.GetValue(Key);
            var options = new ConvergeClientOptions
            {
                DatabasePath = parse.GetValue(Db)!.FullName,
                ServerUrl = ServerUrl(parse),
                AccessTokenProvider = key is null ? null : _ => ValueTask.FromResult<string?>(key),
            };
            foreach (var scope in parse.GetValue(Scopes) ?? [])
            {
                options.Scopes.Add(scope);
            }

            return ConvergeClient.OpenAsync(options, ct);
        }
    }

    private static Argument<string> CollectionArgument() => new("collection") { Description = "The collection." };

    private static Argument<string> IdArgument() => new("id") { Description = "The document's id." };

    private static Argument<string> JsonArgument(string what) => new("json") { Description = what };

    private static Command Put()
    {
        var replica = new Replica();
        var (collection, id, json) = (CollectionArgument(), IdArgument(), JsonArgument("The whole document, a JSON object."));
        var command = new Command("put", "Write a whole document (fields it lacks are removed).") { collection, id, json };
        replica.AddTo(command);
        command.SetAction((parse, ct) => WriteAsync(replica, parse, ct, (c, node) => c.Collection<JsonObject>(parse.GetValue(collection)!).PutAsync(parse.GetValue(id)!, node!, ct), parse.GetValue(json)));
        return command;
    }

    private static Command Patch()
    {
        var replica = new Replica();
        var (collection, id, json) = (CollectionArgument(), IdArgument(), JsonArgument("The fields to write, a JSON object."));
        var command = new Command("patch", "Write some fields of a document.") { collection, id, json };
        replica.AddTo(command);
        command.SetAction((parse, ct) => WriteAsync(replica, parse, ct, (c, node) => c.Collection<JsonObject>(parse.GetValue(collection)!).PatchAsync(parse.GetValue(id)!, node!, ct), parse.GetValue(json)));
        return command;
    }

    private static Command Delete()
    {
        var replica = new Replica();
        var (collection, id) = (CollectionArgument(), IdArgument());
        var command = new Command("delete", "Delete a document.") { collection, id };
        replica.AddTo(command);
        command.SetAction((parse, ct) => WriteAsync(replica, parse, ct, (c, _) => c.Collection<JsonObject>(parse.GetValue(collection)!).DeleteAsync(parse.GetValue(id)!, ct), null));
        return command;
    }

    private static async Task<int> WriteAsync(Replica replica, ParseResult parse, CancellationToken ct, Func<ConvergeClient, JsonObject?, Task> write, string? json)
    {
        JsonObject? node = null;
        if (json is not null)
        {
            try
            {
                node = JsonNode.Parse(json) as JsonObject ?? throw new JsonException("not an object");
            }
            catch (JsonException e)
            {
                await Console.Error.WriteLineAsync($"The document must be a JSON object: {e.Message}");
                return 2;
            }
        }

        await using var client = await replica.OpenAsync(parse, ct);
        try
        {
            await write(client, node);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            await Console.Error.WriteLineAsync(e.Message);
            return 2;
        }

        Console.WriteLine($"written; {await client.GetPendingCountAsync(ct)} mutation(s) waiting to sync");
        return 0;
    }

    private static Command Watch()
    {
        var replica = new Replica();
        var collections = new Argument<string[]>("collection") { Description = "The collections to watch.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("watch", "Stay live and print each change of the collections as a JSON line (origin local or remote), until interrupted; the connection's state goes to standard error.") { collections };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            if (replica.ServerUrl(parse) is null)
            {
                await Console.Error.WriteLineAsync("watch needs --server.");
                return 2;
            }

            await using var client = await replica.OpenAsync(parse, ct);
            var output = Console.Out;
            var gate = new Lock();
            foreach (var name in parse.GetValue(collections)!)
            {
                client.Collection<JsonObject>(name).Changed += (_, e) =>
                {
                    var line = new JsonObject
                    {
                        ["at"] = TimeProvider.System.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
                        ["origin"] = e.Origin == ChangeOrigin.Remote ? "remote" : "local",
                        ["kind"] = e.Kind == ChangeKind.Delete ? "delete" : "put",
                        ["scope"] = e.Scope,
                        ["collection"] = e.Collection,
                        ["id"] = e.Id,
                        ["value"] = e.Json is { } json ? JsonNode.Parse(json.GetRawText()) : null,
                    };
                    lock (gate)
                    {
                        output.WriteLine(line.ToJsonString());
                        output.Flush();
                    }
                };
            }

            client.Live.StatusChanged += (_, e) => Console.Error.WriteLine(e.Error is null ? $"live: {e.Status}" : $"live: {e.Status} ({e.Error.Message})");
            client.Live.Start();
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
                // Interrupted: the normal end of a watch.
            }

            await client.Live.StopAsync();
            return 0;
        });
        return command;
    }

    private static Command Get()
    {
        var replica = new Replica();
        var (collection, id) = (CollectionArgument(), IdArgument());
        var command = new Command("get", "Print a document's local value as JSON (exit 1 when it does not exist).") { collection, id };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var client = await replica.OpenAsync(parse, ct);
            var doc = await client.Collection<JsonObject>(parse.GetValue(collection)!).GetAsync(parse.GetValue(id)!, ct);
            if (doc is null)
            {
                await Console.Error.WriteLineAsync("not found");
                return 1;
            }

            Console.WriteLine(doc.ToJsonString(Indented));
            return 0;
        });
        return command;
    }

    private static Command List()
    {
        var replica = new Replica();
        var collection = CollectionArgument();
        var prefix = new Option<string?>("--prefix") { Description = "Only ids starting with this." };
        var where = new Option<string?>("--where") { Description = "Only documents whose field equals a JSON value, as FIELD=JSON (done=true, title=\"\\\"x\\\"\")." };
        var limit = new Option<int>("--limit") { Description = "At most this many.", DefaultValueFactory = _ => 100 };
        var json = new Option<bool>("--json") { Description = "One JSON object per line ({\"id\":…,\"value\":…}) instead of a table." };
        var command = new Command("list", "List a collection's documents, ordered by id.") { collection, prefix, where, limit, json };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var client = await replica.OpenAsync(parse, ct);
            var query = client.Collection<JsonObject>(parse.GetValue(collection)!).Query().OrderById().Limit(parse.GetValue(limit));
            if (parse.GetValue(prefix) is { } p)
            {
                query = query.WhereIdStartsWith(p);
            }

            if (parse.GetValue(where) is { } w)
            {
                var eq = w.IndexOf('=', StringComparison.Ordinal);
                JsonElement value;
                try
                {
                    value = eq > 0 ? JsonDocument.Parse(w[(eq + 1)..]).RootElement.Clone() : throw new JsonException("missing '='");
                }
                catch (JsonException e)
                {
                    await Console.Error.WriteLineAsync($"--where must look like FIELD=JSON: {e.Message}");
                    return 2;
                }

                query = query.Where(w[..eq], value);
            }

            var page = await query.ToPageAsync(ct);
            if (parse.GetValue(json))
            {
                foreach (var doc in page.Items)
                {
                    Console.WriteLine(new JsonObject { ["id"] = doc.Id, ["value"] = doc.Value.DeepClone() }.ToJsonString());
                }
            }
            else
            {
                var table = new Table().RoundedBorder().AddColumn(new TableColumn("id").NoWrap()).AddColumn("value");
                foreach (var doc in page.Items)
                {
                    table.AddRow(Markup.Escape(doc.Id), Markup.Escape(doc.Value.ToJsonString()));
                }

                AnsiConsole.Write(table);
            }

            if (page.ContinuationToken is not null)
            {
                // On standard error, so a script reading the documents from standard output reads only documents.
                var total = await query.CountAsync(ct);
                await Console.Error.WriteLineAsync($"{page.Items.Count} of {total} documents shown; use --limit {total} to see them all.");
            }

            return 0;
        });
        return command;
    }

    private static Command Sync()
    {
        var replica = new Replica();
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var command = new Command("sync", "Push the outbox and pull every scope once (exit 3 when the server refuses, or refuses some scopes while the others sync; 4 when it is unreachable).") { json };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var client = await replica.OpenAsync(parse, ct);
            SyncReport report;
            try
            {
                report = await client.SyncAsync(null, ct);
            }
            catch (InvalidOperationException e)
            {
                await Console.Error.WriteLineAsync(e.Message);
                return 2;
            }
            catch (ConvergeSyncException e)
            {
                await Console.Error.WriteLineAsync($"The server refused the sync ({e.ErrorCode ?? e.StatusCode?.ToString() ?? "protocol"}): {e.Message}");
                return 3;
            }
            catch (Exception e) when (ConvergeClient.IsNetworkFailure(e))
            {
                await Console.Error.WriteLineAsync($"The server is unreachable: {e.Message}");
                return 4;
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["pushed"] = report.Pushed,
                    ["pulled"] = report.Pulled,
                    ["conflictsOpened"] = report.ConflictsOpened,
                    ["conflictsResolved"] = report.ConflictsResolved,
                    ["restamped"] = report.Restamped,
                    ["rejected"] = new JsonArray([.. report.Rejected.Select(r => (JsonNode)new JsonObject { ["mutation"] = r.MutationId, ["doc"] = r.DocumentId, ["reason"] = r.Reason })]),
                    ["forbiddenScopes"] = new JsonArray([.. report.ForbiddenScopes.Select(scope => (JsonNode)JsonValue.Create(scope))]),
                    ["ms"] = Math.Round(report.Duration.TotalMilliseconds, 1),
                }.ToJsonString());
            }
            else
            {
                Console.WriteLine($"pushed {report.Pushed}, pulled {report.Pulled}, conflicts opened {report.ConflictsOpened}, resolved {report.ConflictsResolved}, restamped {report.Restamped}, rejected {report.Rejected.Count} in {report.Duration.TotalMilliseconds:F0} ms");
                foreach (var r in report.Rejected)
                {
                    Console.WriteLine($"  rejected {r.Collection}/{r.DocumentId} (mutation {r.MutationId}): {r.Reason}");
                }
            }

            if (report.ForbiddenScopes.Count > 0)
            {
                // The other scopes synced; the refused ones' writes wait in the outbox for a round the server accepts.
                var code = (client.LastError as ConvergeSyncException)?.ErrorCode ?? "scope_forbidden";
                await Console.Error.WriteLineAsync($"The server refused scopes {string.Join(", ", report.ForbiddenScopes)} ({code}): {client.LastError?.Message}");
                return 3;
            }

            return 0;
        });
        return command;
    }

    private static Command Conflicts()
    {
        var replica = new Replica();
        var json = new Option<bool>("--json") { Description = "One conflict record per line, as the protocol writes it." };
        var all = new Option<bool>("--all") { Description = "Also resolved conflicts." };
        var command = new Command("conflicts", "List the conflicts waiting for a person.") { json, all };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var client = await replica.OpenAsync(parse, ct);
            var conflicts = (await client.Conflicts.ListAsync(ct)).Where(c => parse.GetValue(all) || c.Status == InboxConflictStatus.Open).ToList();
            if (parse.GetValue(json))
            {
                foreach (var c in conflicts)
                {
                    Console.WriteLine(JsonSerializer.Serialize(c.Record, ProtocolJson.ConflictRecord));
                }

                return 0;
            }

            // Ids and statuses never wrap: a narrow terminal wraps the values instead, so an id can be copied whole.
            var table = new Table().RoundedBorder()
                .AddColumn(new TableColumn("id").NoWrap())
                .AddColumn("document")
                .AddColumn("field")
                .AddColumn("server (theirs)")
                .AddColumn("client (mine)")
                .AddColumn(new TableColumn("status").NoWrap());
            foreach (var c in conflicts)
            {
                foreach (var f in c.Fields)
                {
                    table.AddRow(Markup.Escape(c.Id), Markup.Escape($"{c.Collection}/{c.DocumentId}"), Markup.Escape(f.Name), Markup.Escape(Show(f.Server.Removed ? null : f.Server.Value)), Markup.Escape(Show(f.Client.Removed ? null : f.Client.Value)), c.Status.ToString());
                }
            }

            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    private static Command Resolve()
    {
        var replica = new Replica();
        var id = new Argument<string>("conflict") { Description = "The conflict's id." };
        var mine = new Option<bool>("--mine") { Description = "Keep the values of the write that met the conflict." };
        var theirs = new Option<bool>("--theirs") { Description = "Keep the server's values." };
        var edited = new Option<string?>("--edited") { Description = "Write these values instead, a JSON object of the conflicting fields." };
        var command = new Command("resolve", "Resolve a conflict; the resolution syncs like any write.") { id, mine, theirs, edited };
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var choices = (parse.GetValue(mine) ? 1 : 0) + (parse.GetValue(theirs) ? 1 : 0) + (parse.GetValue(edited) is null ? 0 : 1);
            if (choices != 1)
            {
                await Console.Error.WriteLineAsync("Give exactly one of --mine, --theirs, --edited JSON.");
                return 2;
            }

            await using var client = await replica.OpenAsync(parse, ct);
            try
            {
                if (parse.GetValue(edited) is { } text)
                {
                    await client.Conflicts.ResolveAsync(parse.GetValue(id)!, JsonNode.Parse(text) as JsonObject ?? throw new JsonException("not an object"), ct);
                }
                else
                {
                    await client.Conflicts.ResolveAsync(parse.GetValue(id)!, parse.GetValue(mine) ? ConflictChoice.Mine : ConflictChoice.Theirs, ct);
                }
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or JsonException)
            {
                await Console.Error.WriteLineAsync(e.Message);
                return 2;
            }

            Console.WriteLine("resolved locally; it reaches the server with the next sync");
            return 0;
        });
        return command;
    }

    private static Command Status()
    {
        var replica = new Replica();
        var command = new Command("status", "Print the replica's id, scopes, pending writes and open conflicts, and whether the server answers.");
        replica.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var client = await replica.OpenAsync(parse, ct);
            var open = (await client.Conflicts.ListAsync(ct)).Count(c => c.Status == InboxConflictStatus.Open);
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("replica", client.ClientId);
            grid.AddRow("scopes", Markup.Escape(string.Join(", ", client.Scopes)));
            grid.AddRow("pending writes", (await client.GetPendingCountAsync(ct)).ToString(CultureInfo.InvariantCulture));
            grid.AddRow("open conflicts", open.ToString(CultureInfo.InvariantCulture));
            grid.AddRow("server", Markup.Escape(await ProbeAsync(replica.ServerUrl(parse), ct)));
            AnsiConsole.Write(grid);
            return 0;
        });
        return command;
    }

    private static async Task<string> ProbeAsync(Uri? server, CancellationToken ct)
    {
        if (server is null)
        {
            return "none (local only)";
        }

        using var http = new HttpClient { BaseAddress = server, Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync("converge/v1/health", ct);
            return response.IsSuccessStatusCode ? $"{server} answers" : $"{server} answered {(int)response.StatusCode}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return $"{server} unreachable ({e.Message})";
        }
    }

    private static string Show(JsonElement? value) => value is { } v ? v.GetRawText() : "(removed)";
}
