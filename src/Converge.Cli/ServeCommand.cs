using System.CommandLine;
using Converge.Protocol.Documents;
using Converge.Server;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>`converge serve`: runs the sync server on an embedded SQLite file until Ctrl+C.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var db = new Option<FileInfo>("--db") { Description = "The server's SQLite file (created when missing).", DefaultValueFactory = _ => new FileInfo("converge-server.db") };
        var urls = new Option<string>("--urls") { Description = "The address to listen on.", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
        var keys = new Option<string[]>("--api-key")
        {
            Description = "A development API key and the scopes it grants, as KEY=SCOPE[,SCOPE...] (team:* grants every scope starting with team:). Repeatable.",
            AllowMultipleArgumentsPerToken = false,
        };
        var collections = new Option<string[]>("--collection")
        {
            Description = "A collection's conflict policy, as NAME=LastWriterWins|ServerWins|ClientWins|Manual[:UpdateWins]. Repeatable.",
        };
        var jwtAuthority = new Option<string?>("--jwt-authority") { Description = "Accept JWTs from this OpenID Connect authority (its signing keys are fetched from it)." };
        var jwtAudience = new Option<string?>("--jwt-audience") { Description = "The audience JWTs must carry." };
        var jwtIssuer = new Option<string?>("--jwt-issuer") { Description = "The issuer JWTs must carry (with --jwt-signing-key)." };
        var jwtKey = new Option<string?>("--jwt-signing-key") { Description = "Accept JWTs signed (HS256) with this base64 key from --jwt-issuer; for development and tests." };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Keep the data in this PostgreSQL database (an Npgsql connection string) instead of --db. Several serve processes on one database form a cluster: every client sees every change live, whichever node it is connected to.",
        };
        var restored = new Option<bool>("--restored")
        {
            Description = "Use once, on the first start after restoring the database from a backup: gives the store a new epoch, so every device downloads its scopes again (keeping its unsent writes) instead of pulling after cursors the restored store never had.",
        };
        var command = new Command("serve", "Run the Converge sync server on an embedded SQLite database, or on PostgreSQL with --postgres. JWT settings may also come from appsettings.json or environment variables (Authentication__Schemes__Bearer__...).")
        {
            db, postgres, urls, keys, collections, jwtAuthority, jwtAudience, jwtIssuer, jwtKey, restored,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (!TryParseKeys(parse.GetValue(keys) ?? [], out var apiKeys, out var error) || !TryParseCollections(parse.GetValue(collections) ?? [], out var rules, out error))
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(error)}[/]");
                return 2;
            }

            var settings = new Dictionary<string, string?>();
            const string Bearer = "Authentication:Schemes:Bearer:";
            if (parse.GetValue(jwtAuthority) is { } authority)
            {
                settings[Bearer + "Authority"] = authority;
            }

            if (parse.GetValue(jwtAudience) is { } audience)
            {
                settings[Bearer + "ValidAudiences:0"] = audience;
            }

            if (parse.GetValue(jwtIssuer) is { } issuer)
            {
                settings[Bearer + "ValidIssuer"] = issuer;
            }

            if (parse.GetValue(jwtKey) is { } signingKey)
            {
                if (parse.GetValue(jwtIssuer) is not { } keyIssuer || !IsBase64(signingKey))
                {
                    AnsiConsole.MarkupLine("[red]--jwt-signing-key needs a base64 key and --jwt-issuer.[/]");
                    return 2;
                }

                settings[Bearer + "SigningKeys:0:Issuer"] = keyIssuer;
                settings[Bearer + "SigningKeys:0:Value"] = signingKey;
            }

            if (apiKeys.Count == 0 && settings.Count == 0)
            {
                AnsiConsole.MarkupLine("[yellow]No --api-key and no JWT settings: every request but health will be refused (401). Example: --api-key dev-key=user:alice[/]");
            }

            var connectionString = parse.GetValue(postgres);
            if (parse.GetValue(restored))
            {
                string epoch;
                try
                {
                    epoch = connectionString is null
                        ? await ConvergeStoreMaintenance.RotateEpochAsync(parse.GetValue(db)!.FullName, ct)
                        : await RotatePostgreSqlEpochAsync(connectionString, ct);
                }
                catch (Exception e) when (e is FileNotFoundException or InvalidOperationException or ArgumentException or Npgsql.NpgsqlException)
                {
                    AnsiConsole.MarkupLine($"[red]--restored: {Markup.Escape(e.Message)}[/]");
                    return 2;
                }

                AnsiConsole.MarkupLine($"[yellow]Restored store: new epoch {epoch}. Devices download their scopes again at their next sync.[/]");
            }

            Microsoft.AspNetCore.Builder.WebApplication app;
            Uri address;
            try
            {
                (app, address) = await ServerHost.StartAsync(parse.GetValue(db)!.FullName, parse.GetValue(urls)!, apiKeys, rules, LogLevel.Information, ct, settings: settings, postgres: connectionString);
            }
            catch (Exception e) when (connectionString is not null && e is InvalidOperationException or ArgumentException or Npgsql.NpgsqlException)
            {
                AnsiConsole.MarkupLine($"[red]--postgres: {Markup.Escape(e.Message)}[/]");
                return 2;
            }

            await using (app)
            {
                var store = connectionString is null ? parse.GetValue(db)!.FullName : "PostgreSQL database " + new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database;
                AnsiConsole.MarkupLine($"Converge server on [green]{address}[/] (store {Markup.Escape(store)}). Ctrl+C stops it.");
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                }

                await app.StopAsync(CancellationToken.None);
            }

            return 0;
        });
        return command;
    }

    /// <summary>Gives a PostgreSQL store a new epoch (after a restore); every node should be restarted after it.</summary>
    private static async Task<string> RotatePostgreSqlEpochAsync(string connectionString, CancellationToken ct)
    {
        await using var dataSource = Npgsql.NpgsqlDataSource.Create(connectionString);
        await using var store = new Converge.Server.PostgreSql.PostgreSqlSyncStore(dataSource);
        await store.InitializeAsync(ct);
        return await store.RotateEpochAsync(ct);
    }

    private static bool IsBase64(string text)
    {
        Span<byte> buffer = new byte[text.Length];
        return Convert.TryFromBase64String(text, buffer, out var written) && written >= 16;
    }

    internal static bool TryParseKeys(string[] values, out Dictionary<string, string[]> keys, out string error)
    {
        keys = new Dictionary<string, string[]>(StringComparer.Ordinal);
        error = "";
        foreach (var value in values)
        {
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == value.Length - 1)
            {
                error = $"--api-key '{value}' must look like KEY=SCOPE[,SCOPE...].";
                return false;
            }

            keys[value[..eq]] = value[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }

        return true;
    }

    internal static bool TryParseCollections(string[] values, out Dictionary<string, CollectionRules> rules, out string error)
    {
        rules = new Dictionary<string, CollectionRules>(StringComparer.Ordinal);
        error = "";
        foreach (var value in values)
        {
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            var parts = eq > 0 ? value[(eq + 1)..].Split(':') : [];
            if (eq <= 0 || parts.Length is < 1 or > 2
                || !Enum.TryParse<ConflictPolicy>(parts[0], ignoreCase: true, out var policy) || policy == ConflictPolicy.Custom
                || (parts.Length == 2 && !Enum.TryParse<DeleteRule>(parts[1], ignoreCase: true, out _)))
            {
                error = $"--collection '{value}' must look like NAME=LastWriterWins|ServerWins|ClientWins|Manual[:DeleteWins|UpdateWins] (Custom needs code).";
                return false;
            }

            rules[value[..eq]] = new CollectionRules { Policy = policy, Delete = parts.Length == 2 ? Enum.Parse<DeleteRule>(parts[1], ignoreCase: true) : DeleteRule.DeleteWins };
        }

        return true;
    }
}
