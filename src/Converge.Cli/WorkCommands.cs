using System.CommandLine;
using System.Globalization;
using Converge.Work;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>`converge work ...`: inspect and control a work store from another process (enqueue-only access).</summary>
internal static class WorkCommands
{
    public static Command Create()
    {
        var work = new Command("work", "Inspect and control a Converge.Work store.");
        work.Subcommands.Add(List());
        work.Subcommands.Add(Cancel());
        work.Subcommands.Add(Prune());
        return work;
    }

    /// <summary>Where the store is: a SQLite file, or a schema in a PostgreSQL database.</summary>
    private sealed class StoreOptions
    {
        public Option<FileInfo?> Db { get; } = new("--db") { Description = "The SQLite work store." };

        public Option<string?> Postgres { get; } = new("--postgres") { Description = "Instead of --db: the Npgsql connection string of a PostgreSQL work store (Converge.Work.PostgreSql)." };

        public Option<string> Schema { get; } = new("--schema") { Description = "With --postgres: the store's schema.", DefaultValueFactory = _ => new PostgreSqlWorkStoreOptions().Schema };

        public void AddTo(Command command)
        {
            command.Options.Add(Db);
            command.Options.Add(Postgres);
            command.Options.Add(Schema);
        }

        public Task<WorkManager?> OpenAsync(ParseResult parse, CancellationToken ct) =>
            WorkCommands.OpenAsync(parse.GetValue(Db), parse.GetValue(Postgres), parse.GetValue(Schema)!, ct);
    }

    private static Command List()
    {
        var store = new StoreOptions();
        var state = new Option<WorkState[]>("--state") { Description = "Only work in these states.", AllowMultipleArgumentsPerToken = true };
        var tag = new Option<string[]>("--tag") { Description = "Only work with these tags.", AllowMultipleArgumentsPerToken = true };
        var name = new Option<string[]>("--name") { Description = "Only work under these unique names.", AllowMultipleArgumentsPerToken = true };
        var json = new Option<bool>("--json") { Description = "Print JSON lines instead of a table." };
        var wide = new Option<bool>("--wide") { Description = "Also show period count, generation and tags." };
        var command = new Command("list", "Print the WorkInfo of every work in a store.") { state, tag, name, json, wide };
        store.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var manager = await store.OpenAsync(parse, ct);
            if (manager is null)
            {
                return 2;
            }

            var query = new WorkQuery
            {
                States = parse.GetValue(state) ?? [],
                Tags = parse.GetValue(tag) ?? [],
                UniqueNames = parse.GetValue(name) ?? [],
            };
            var infos = await manager.GetWorkInfosAsync(query, ct);
            if (parse.GetValue(json))
            {
                foreach (var i in infos)
                {
                    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
                    {
                        ["id"] = i.Id,
                        ["worker"] = i.WorkerName,
                        ["state"] = i.State.ToString(),
                        ["unique_name"] = i.UniqueName,
                        ["attempts"] = i.RunAttemptCount,
                        ["period_count"] = i.PeriodCount,
                        ["generation"] = i.Generation,
                        ["next"] = i.NextScheduleTime,
                        ["stop_reason"] = i.StopReason.ToString(),
                        ["failure_reason"] = i.FailureReason,
                        ["tags"] = i.Tags.Order(StringComparer.Ordinal).ToArray(),
                        ["output"] = i.OutputData.ToJson(),
                    }));
                }

                return 0;
            }

            AnsiConsole.Write(WorkTable(infos, parse.GetValue(wide)));
            AnsiConsole.MarkupLine($"[grey]{infos.Count} work items in {Markup.Escape(manager.DatabasePath)}[/]");
            return 0;
        });
        return command;
    }

    private static Command Cancel()
    {
        var store = new StoreOptions();
        var id = new Option<Guid[]>("--id") { Description = "Cancel work by id." };
        var tag = new Option<string[]>("--tag") { Description = "Cancel work with a tag." };
        var name = new Option<string[]>("--name") { Description = "Cancel work under a unique name." };
        var all = new Option<bool>("--all") { Description = "Cancel all unfinished work." };
        var command = new Command("cancel", "Cancel unfinished work and its dependents.") { id, tag, name, all };
        store.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var query = new WorkQuery { Ids = parse.GetValue(id) ?? [], Tags = parse.GetValue(tag) ?? [], UniqueNames = parse.GetValue(name) ?? [] };
            if (query == WorkQuery.All || (query.Ids.Count == 0 && query.Tags.Count == 0 && query.UniqueNames.Count == 0))
            {
                if (!parse.GetValue(all))
                {
                    AnsiConsole.MarkupLine("[red]Say which work to cancel: --id, --tag, --name, or --all.[/]");
                    return 2;
                }

                query = WorkQuery.All;
            }

            await using var manager = await store.OpenAsync(parse, ct);
            if (manager is null)
            {
                return 2;
            }

            var count = await manager.CancelWorkAsync(query, ct);
            AnsiConsole.MarkupLine($"Cancelled {count} work {(count == 1 ? "item" : "items")}.");
            return 0;
        });
        return command;
    }

    private static Command Prune()
    {
        var store = new StoreOptions();
        var command = new Command("prune", "Delete finished work that nothing unfinished depends on.");
        store.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            await using var manager = await store.OpenAsync(parse, ct);
            if (manager is null)
            {
                return 2;
            }

            AnsiConsole.MarkupLine($"Deleted {await manager.PruneWorkAsync(ct)} finished work items.");
            return 0;
        });
        return command;
    }

    private static async Task<WorkManager?> OpenAsync(FileInfo? db, string? postgres, string schema, CancellationToken ct)
    {
        if ((db is null) == (postgres is null))
        {
            AnsiConsole.MarkupLine("[red]Name the work store: --db FILE (SQLite) or --postgres \"CONNECTION STRING\" (PostgreSQL), one of them.[/]");
            return null;
        }

        // Enqueue-only: safe next to running schedulers, and never runs work itself.
        var options = new WorkManagerOptions { EnqueueOnly = true };
        if (db is not null)
        {
            if (!db.Exists)
            {
                AnsiConsole.MarkupLine($"[red]No work store at {Markup.Escape(db.FullName)}.[/]");
                return null;
            }

            options.DatabasePath = db.FullName;
        }
        else
        {
            try
            {
                options.UsePostgreSql(postgres!, s => s.Schema = schema);
                // Opening a store creates a missing one; a command that inspects must not make one under a mistyped name.
                await using var connection = new Npgsql.NpgsqlConnection(postgres);
                await connection.OpenAsync(ct);
                await using var exists = new Npgsql.NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection) { Parameters = { new() { Value = schema + ".schema_version" } } };
                if (!(bool)(await exists.ExecuteScalarAsync(ct))!)
                {
                    AnsiConsole.MarkupLine($"[red]No work store in schema '{Markup.Escape(schema)}' of that database (--schema names another).[/]");
                    return null;
                }
            }
            catch (Exception e) when (e is ArgumentException or Npgsql.NpgsqlException)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
                return null;
            }
        }

        WorkManager manager;
        try
        {
            manager = new WorkManager(options, new WorkerRegistry());
        }
        catch (InvalidOperationException e)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
            return null;
        }

        await manager.StartAsync(ct);
        return manager;
    }

    public static Table CompactWorkTable(IEnumerable<WorkInfo> infos)
    {
        var table = new Table().RoundedBorder().AddColumn("id").AddColumn("worker").AddColumn("state")
            .AddColumn(new TableColumn("attempts").RightAligned()).AddColumn("output");
        foreach (var i in infos)
        {
            table.AddRow(Markup.Escape(i.Id.ToString()[^12..]), Markup.Escape(i.WorkerName), StateMarkup(i.State),
                i.RunAttemptCount.ToString(CultureInfo.InvariantCulture), Markup.Escape(i.OutputData.ToJson()));
        }

        return table;
    }

    public static Table WorkTable(IEnumerable<WorkInfo> infos, bool wide = false)
    {
        var table = new Table().RoundedBorder()
            .AddColumn("id").AddColumn("worker").AddColumn("state").AddColumn("unique name")
            .AddColumn(new TableColumn("attempts").RightAligned());
        if (wide)
        {
            table.AddColumn(new TableColumn("period").RightAligned()).AddColumn(new TableColumn("gen").RightAligned()).AddColumn("tags");
        }

        table.AddColumn("next run (UTC)").AddColumn("stop reason / failure / output");
        foreach (var i in infos)
        {
            var cells = new List<string>
            {
                Markup.Escape(i.Id.ToString()),
                Markup.Escape(i.WorkerName),
                StateMarkup(i.State),
                Markup.Escape(i.UniqueName ?? ""),
                i.RunAttemptCount.ToString(CultureInfo.InvariantCulture),
            };
            if (wide)
            {
                cells.Add(i.Periodicity is null ? "" : i.PeriodCount.ToString(CultureInfo.InvariantCulture));
                cells.Add(i.Generation.ToString(CultureInfo.InvariantCulture));
                cells.Add(Markup.Escape(string.Join(' ', i.Tags.Order(StringComparer.Ordinal))));
            }

            cells.Add(i.NextScheduleTime?.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture) ?? "");
            var detail = i.FailureReason ?? (i.StopReason != StopReason.NotStopped ? i.StopReason.ToString() : i.OutputData.IsEmpty ? "" : i.OutputData.ToJson());
            cells.Add(Markup.Escape(detail));
            table.AddRow(cells.ToArray());
        }

        return table;
    }

    public static string StateMarkup(WorkState state) => state switch
    {
        WorkState.Succeeded => "[green]SUCCEEDED[/]",
        WorkState.Failed => "[red]FAILED[/]",
        WorkState.Cancelled => "[grey]CANCELLED[/]",
        WorkState.Running => "[yellow]RUNNING[/]",
        WorkState.Blocked => "[blue]BLOCKED[/]",
        _ => "ENQUEUED",
    };
}
