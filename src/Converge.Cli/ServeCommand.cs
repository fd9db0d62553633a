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
            Description = "A development API key, as NAME:SECRET=SCOPE[,SCOPE...]: clients send SECRET as their bearer token; NAME is the principal logs and the database show (the secret never reaches either); team:* grants every scope starting with team:. Repeatable.",
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
                AnsiConsole.MarkupLine("[yellow]No --api-key and no JWT settings: every request but health will be refused (401). Example: --api-key alice:dev-key-1=user:alice[/]");
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

    /// <summary>Reads <c>--api-key NAME:SECRET=SCOPE[,SCOPE...]</c> values; an error never quotes a value, since it holds a secret.</summary>
    internal static bool TryParseKeys(string[] values, out List<ApiKeySetting> keys, out string error)
    {
        const string Form = "--api-key must look like NAME:SECRET=SCOPE[,SCOPE...], for example --api-key alice:dev-key-1=user:alice";
        keys = [];
        error = "";
        var secrets = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < values.Length; i++)
        {
            var value = values[i];
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            var colon = eq > 0 ? value.IndexOf(':', 0, eq) : -1;
            if (eq > 0 && colon < 0)
            {
                // The old KEY=SCOPES form made the secret the principal's name, so it was logged and stored.
                error = $"{Form}. The KEY=SCOPES form is no longer accepted: the key would be its own name, and names are logged and stored (--api-key #{i + 1}).";
                return false;
            }

            var name = colon > 0 ? value[..colon].Trim() : "";
            var secret = colon > 0 ? value[(colon + 1)..eq] : "";
            var scopes = eq > 0 ? value[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
            if (name.Length == 0 || secret.Length == 0 || scopes.Length == 0)
            {
                error = $"{Form}: --api-key #{i + 1} has no {(name.Length == 0 ? "NAME" : secret.Length == 0 ? "SECRET" : "SCOPE")}.";
                return false;
            }

            if (secret.Any(char.IsWhiteSpace) || name.Any(char.IsControl))
            {
                error = $"{Form}: the SECRET of --api-key '{name}' cannot contain white space, nor its NAME control characters.";
                return false;
            }

            if (string.Equals(name, secret, StringComparison.Ordinal) || !secrets.Add(secret))
            {
                error = $"{Form}: --api-key '{name}' must have a SECRET of its own, other than its NAME and every other key's.";
                return false;
            }

            keys.Add(new ApiKeySetting(name, secret, scopes));
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
