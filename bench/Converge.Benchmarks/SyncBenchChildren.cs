using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Converge.Cli;
using Converge.Client;
using Converge.PostgreSql;
using Converge.Protocol.Documents;
using Microsoft.Extensions.Logging;
using Npgsql;
using Spectre.Console;

namespace Converge.Benchmarks;

/// <summary>The document every sync workload writes: a 40-character title, a bool, an int and three short tags.</summary>
internal sealed record BenchDoc(string Title, bool Done, int Priority, string[] Tags)
{
    private static readonly string[][] TagSets = [.. Enumerable.Range(0, 16).Select(i => new[] { "tag" + (i % 3), "tag" + (3 + (i % 5)), "tag" + (8 + (i % 7)) })];

    public static string Id(int i) => "d" + i.ToString("D7", CultureInfo.InvariantCulture);

    public static BenchDoc Create(int i) =>
        new(("Title of document number " + i.ToString("D8", CultureInfo.InvariantCulture)).PadRight(40, '.'), i % 2 == 0, i % 100, TagSets[i % TagSets.Length]);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BenchDoc))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class SyncBenchJson : JsonSerializerContext;

/// <summary>The child processes of `sync`: the server, and the devices driven line by line over stdin.</summary>
internal static class SyncBenchChildren
{
    public const string ApiKey = "bench-key";

    /// <summary>The collections of the conflict storm, one per policy.</summary>
    public static readonly (string Name, ConflictPolicy Policy)[] StormPolicies =
    [
        ("LastWriterWins", ConflictPolicy.LastWriterWins),
        ("ServerWins", ConflictPolicy.ServerWins),
        ("ClientWins", ConflictPolicy.ClientWins),
        ("Custom", ConflictPolicy.Custom),
        ("Manual", ConflictPolicy.Manual),
    ];

    public static string StormCollection(string policy) => "storm-" + policy.ToLowerInvariant();

    /// <summary>The custom resolver of the storm: both titles, in ordinal order, so the result does not depend on who came first.</summary>
    public static string CustomTitle(string a, string b) => string.CompareOrdinal(a, b) <= 0 ? a + " + " + b : b + " + " + a;

    public static Command CreateServer()
    {
        var db = new Option<FileInfo>("--db") { Required = true };
        var postgres = new Option<string?>("--postgres") { Description = "Keep the data in this PostgreSQL database instead of --db." };
        var command = new Command("server", "Internal: a sync server for the benchmark; prints its address and runs until stdin closes.") { db, postgres };
        command.Hidden = true;
        command.SetAction((parse, ct) => RunServerAsync(parse.GetValue(db)!.FullName, parse.GetValue(postgres), ct));
        return command;
    }

    public static Command CreateDevice()
    {
        var command = new Command("device", "Internal: a device of the benchmark, driven by commands on stdin.");
        command.Hidden = true;
        command.SetAction((_, ct) => RunDeviceAsync(ct));
        return command;
    }

    private static async Task<int> RunServerAsync(string db, string? postgres, CancellationToken ct)
    {
        ApiKeySetting[] keys = [new("bench", ApiKey, ["*"])];
        var rules = StormPolicies.ToDictionary(
            p => StormCollection(p.Name),
            p => p.Policy == ConflictPolicy.Custom
                ? new CollectionRules
                {
                    Policy = ConflictPolicy.Custom,
                    Resolver = conflict => conflict.Fields.ToDictionary(
                        f => f.Name,
                        f => f.Name == "title" && f.Server is { ValueKind: JsonValueKind.String } s && f.Client is { ValueKind: JsonValueKind.String } c
                            ? JsonSerializer.SerializeToElement(CustomTitle(s.GetString()!, c.GetString()!), SyncBenchStringJson.Default.String)
                            : f.Client ?? f.Server!.Value),
                }
                : new CollectionRules { Policy = p.Policy });
        var (app, address) = await ServerHost.StartAsync(db, "http://127.0.0.1:0", keys, rules, LogLevel.Warning, ct, postgres: postgres);
        await using (app)
        {
            Console.WriteLine("READY " + address);
            // The parent closes stdin (or dies) to stop the server.
            while (await Console.In.ReadLineAsync(ct) is { } line && line != "exit")
            {
            }

            await app.StopAsync(CancellationToken.None);
        }

        return 0;
    }

    private static async Task<int> RunDeviceAsync(CancellationToken ct)
    {
        var clients = new Dictionary<string, ConvergeClient>(StringComparer.Ordinal);
        try
        {
            await LiveBenchChildren.CommandLoopAsync((args, token) => ExecuteAsync(clients, args, token), ct);
        }
        finally
        {
            foreach (var client in clients.Values)
            {
                await client.DisposeAsync();
            }
        }

        return 0;
    }

    private static long Now() => Stopwatch.GetTimestamp();

    /// <summary>The options of a bench device, from an "open NAME DB URL SCOPE" command: its store, the server, the bench's key and one scope.</summary>
    internal static ConvergeClientOptions ClientOptions(string[] open)
    {
        var options = new ConvergeClientOptions
        {
            DatabasePath = open[2],
            ServerUrl = new Uri(open[3]),
            AccessTokenProvider = _ => ValueTask.FromResult<string?>(ApiKey),
        };
        options.Scopes.Add(open[4]);
        return options;
    }

    private static async Task<string> ExecuteAsync(Dictionary<string, ConvergeClient> clients, string[] a, CancellationToken ct)
    {
        switch (a[0])
        {
            case "open":
            {
                // open NAME DB URL SCOPE
                var options = ClientOptions(a);
                options.PushBatchSize = 1_000;
                options.PullPageSize = ConvergeClientOptions.MaxPullPageSize;
                clients[a[1]] = await ConvergeClient.OpenAsync(options, ct);
                return "";
            }

            case "close":
                await clients[a[1]].DisposeAsync();
                clients.Remove(a[1]);
                return "";

            case "write":
            {
                // write NAME COLLECTION FROM COUNT BATCH: new documents, in batches.
                var client = clients[a[1]];
                var collection = client.Collection(a[2], SyncBenchJson.Default.BenchDoc);
                int from = Int(a[3]), count = Int(a[4]), batch = Int(a[5]);
                var start = Now();
                for (var i = from; i < from + count; i += batch)
                {
                    var end = Math.Min(from + count, i + batch);
                    await client.WriteBatchAsync(
                        b =>
                        {
                            for (var j = i; j < end; j++)
                            {
                                b.Put(collection, BenchDoc.Id(j), BenchDoc.Create(j));
                            }
                        },
                        ct);
                }

                return $"{start} {Now()}";
            }

            case "edit":
            {
                // edit NAME COLLECTION COUNT PREFIX OTHER: a new title for documents 0..COUNT-1 (and priority 2 when OTHER is 1), in one batch.
                var client = clients[a[1]];
                var collection = client.Collection(a[2], SyncBenchJson.Default.BenchDoc);
                int count = Int(a[3]);
                var prefix = a[4];
                var other = a[5] == "1";
                await client.WriteBatchAsync(
                    b =>
                    {
                        for (var i = 0; i < count; i++)
                        {
                            var fields = new JsonObject { ["title"] = prefix + " " + BenchDoc.Id(i) };
                            if (other)
                            {
                                fields["priority"] = 2;
                            }

                            b.Patch(collection, BenchDoc.Id(i), fields);
                        }
                    },
                    ct);
                return "";
            }

            case "patch":
            {
                // patch NAME COLLECTION VALUE ID...: a new title for the given documents, one batch.
                var client = clients[a[1]];
                var collection = client.Collection(a[2], SyncBenchJson.Default.BenchDoc);
                await client.WriteBatchAsync(
                    b =>
                    {
                        foreach (var id in a.Skip(4))
                        {
                            b.Patch(collection, id, new JsonObject { ["title"] = a[3] + " " + id });
                        }
                    },
                    ct);
                return "";
            }

            case "sync":
            {
                // sync NAME: one round; answers its start and end, counts, and when the push phase ended.
                var client = clients[a[1]];
                long pushed = 0;
                var progress = new SyncProgressSink(p =>
                {
                    if (p.Phase == SyncPhase.Push)
                    {
                        pushed = Now();
                    }
                });
                var start = Now();
                var report = await client.SyncAsync(progress, ct);
                return $"{start} {Now()} {report.Pushed} {report.Pulled} {report.ConflictsOpened} {(pushed == 0 ? start : pushed)}";
            }

            case "pull-until":
            {
                // pull-until NAME COUNT: sync rounds until COUNT documents arrived.
                var client = clients[a[1]];
                var target = Int(a[2]);
                var start = Now();
                int pulled = 0, rounds = 0;
                while (pulled < target)
                {
                    var round = (await client.SyncAsync(null, ct)).Pulled;
                    pulled += round;
                    rounds++;
                    if (round == 0)
                    {
                        // Nothing yet: poll again shortly, as a device woken by a change notification would pull.
                        await Task.Delay(1, ct);
                    }
                }

                return $"{start} {Now()} {rounds}";
            }

            case "count":
                return (await clients[a[1]].Collection(a[2], SyncBenchJson.Default.JsonObject).Query().CountAsync(ct)).ToString(CultureInfo.InvariantCulture);

            case "dump":
            {
                // dump NAME COLLECTION FILE: the canonical JSON of every live document, and the inbox's size.
                var client = clients[a[1]];
                var query = client.Collection(a[2], SyncBenchJson.Default.JsonObject).Query().Limit(1_000);
                var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
                var page = await query.ToPageAsync(ct);
                while (true)
                {
                    foreach (var doc in page.Items)
                    {
                        all[doc.Id] = SyncBench.Canonical(doc.Value);
                    }

                    if (page.ContinuationToken is not { } token)
                    {
                        break;
                    }

                    page = await query.After(token).ToPageAsync(ct);
                }

                await File.WriteAllLinesAsync(a[3], all.Select(p => p.Key + "\t" + p.Value), ct);
                var conflicts = (await client.Conflicts.ListAsync(ct)).Count(c => c.Collection == a[2]);
                return $"{all.Count} {conflicts}";
            }

            default:
                throw new ArgumentException("Unknown command " + a[0]);
        }
    }

    private static int Int(string text) => int.Parse(text, CultureInfo.InvariantCulture);
}

[JsonSerializable(typeof(string))]
internal sealed partial class SyncBenchStringJson : JsonSerializerContext;

/// <summary>Reports progress on the syncing thread, at once (<see cref="Progress{T}"/> would post it later to the thread pool).</summary>
internal sealed class SyncProgressSink(Action<SyncProgress> report) : IProgress<SyncProgress>
{
    public void Report(SyncProgress value) => report(value);
}

/// <summary>A child process of the benchmark, driven over stdin and stdout.</summary>
internal sealed class BenchChild : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _errors = new();
    private readonly Task _stderr;

    private BenchChild(Process process)
    {
        _process = process;
        _stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (_errors)
                {
                    _errors.Enqueue(line);
                    if (_errors.Count > 50)
                    {
                        _errors.Dequeue();
                    }
                }
            }
        });
    }

    /// <summary>Gets or sets the empty folder the children run in; the benchmark sets it inside its temporary folder.</summary>
    public static string WorkingDirectory { get; set; } = Path.GetTempPath();

    public int Id => _process.Id;

    /// <summary>Deletes a benchmark's scratch folder, after closing the pooled SQLite connections to its stores; a file still held elsewhere leaves it behind.</summary>
    public static void RemoveScratch(string directory)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static BenchChild Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>Starts a child with more environment variables (runtime settings, say).</summary>
    public static BenchChild Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var (file, prefix) = ChildProcess.SelfCommand();
        var info = ChildProcess.StartInfo(file, prefix.Concat(args));
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.RedirectStandardInput = true;

        // An empty working directory: the server's host watches its content root (the working directory) for
        // configuration changes, and would otherwise wake for every write of any store beneath it.
        info.WorkingDirectory = WorkingDirectory;
        info.Environment["DOTNET_hostBuilder__reloadConfigOnChange"] = "false";
        return new BenchChild(Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}."));
    }

    /// <summary>Reads lines until one starts with <paramref name="prefix"/>.</summary>
    public async Task<string> WaitForAsync(string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(cts.Token);
            if (line is null)
            {
                throw new InvalidOperationException($"The child process exited before printing '{prefix}': {Errors()}");
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..].Trim();
            }
        }
    }

    /// <summary>Sends a command to a device and returns the fields of its OK answer.</summary>
    public async Task<string[]> SendAsync(string command, TimeSpan? timeout = null)
    {
        await WriteAsync(command);
        return await ReadOkAsync(command, timeout);
    }

    /// <summary>Sends a command without waiting for its answer.</summary>
    public async Task WriteAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Reads the answer of a command sent with <see cref="WriteAsync"/>.</summary>
    public async Task<string[]> ReadOkAsync(string command, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        var line = await _process.StandardOutput.ReadLineAsync(cts.Token)
            ?? throw new InvalidOperationException($"The device exited during '{command}': {Errors()}");
        if (!line.StartsWith("OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The device failed '{command}': {line}");
        }

        return line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..];
    }

    /// <summary>The peak resident memory of the process so far (VmHWM), in MB.</summary>
    public double PeakRssMb()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                var kb = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                return kb / 1024.0;
            }
        }

        return double.NaN;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                await _process.StandardInput.WriteLineAsync("exit");
                _process.StandardInput.Close();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await _process.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            // Already gone.
        }

        await _stderr.ConfigureAwait(false);
        _process.Dispose();
    }

    private string Errors()
    {
        lock (_errors)
        {
            return string.Join(Environment.NewLine, _errors);
        }
    }
}

/// <summary>
/// The PostgreSQL of a benchmark's <c>--postgres</c>: a server named by a connection string, or with "auto" a private
/// one started here from the machine's binaries. The benchmark takes a new database for each workload; at the end the
/// databases are dropped, and a private server is stopped and deleted.
/// </summary>
internal sealed class BenchPostgres : IAsyncDisposable
{
    public const string Auto = "auto";

    private readonly string _server;
    private readonly PrivatePostgres? _private;
    private readonly string _run = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3));
    private readonly List<string> _databases = [];

    private BenchPostgres(string server, PrivatePostgres? privateServer, string description, string name)
    {
        _server = server;
        _private = privateServer;
        Description = description;
        Name = name;
    }

    /// <summary>Gets what the server is, for the output and the JSON.</summary>
    public string Description { get; }

    /// <summary>Gets what the server is, in a few words.</summary>
    public string Name { get; }

    /// <summary>Gets the private server's postmaster, when this is a private server.</summary>
    public int? PostmasterId => _private?.PostmasterId();

    public static Option<string?> CreateOption(string what) => new("--postgres")
    {
        Description = $"{what} Either the Npgsql connection string of a server where the benchmark may create (and afterwards drops) databases, or '{Auto}': a private PostgreSQL started here from the machine's binaries (/usr/lib/postgresql/N/bin), run as user '{PrivatePostgres.ServerUser}' when this is root, stopped and deleted at the end.",
    };

    /// <summary>Starts or checks the server; prints what it did. Throws <see cref="InvalidOperationException"/> with a message for the user when it cannot.</summary>
    public static async Task<BenchPostgres> OpenAsync(string value, CancellationToken ct)
    {
        if (string.Equals(value, Auto, StringComparison.OrdinalIgnoreCase))
        {
            var bin = PrivatePostgres.FindBinaries() ?? throw new InvalidOperationException(
                $"--postgres auto needs PostgreSQL's server binaries (initdb, pg_ctl, postgres), and none were found under /usr/lib/postgresql, through pg_config or on the PATH: {PrivatePostgres.InstallHint}. Or give --postgres the connection string of a server where the benchmark may create databases.");
            AnsiConsole.MarkupLine($"[grey]--postgres auto: starting a private PostgreSQL from {Markup.Escape(bin)}…[/]");
            var server = await PrivatePostgres.StartAsync(bin, PrivatePostgres.WalNormalSettings, ct);
            var settings = string.Join(", ", PrivatePostgres.WalNormalSettings);
            var description = $"private PostgreSQL {server.Version} from {server.BinDirectory}, run as user {server.RunsAs}, on 127.0.0.1:{server.Port}, data in {server.Directory} ({settings}; otherwise the defaults)";
            AnsiConsole.MarkupLine($"Started a {Markup.Escape(description)}. It is stopped and deleted at the end, also on Ctrl+C.");
            return new BenchPostgres(server.ConnectionString, server, description, $"private PostgreSQL {server.Version}");
        }

        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(value);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException($"--postgres: '{value}' is neither '{Auto}' nor an Npgsql connection string: {e.Message}", e);
        }

        var given = $"PostgreSQL at {builder.Host}:{builder.Port} as {builder.Username}";
        AnsiConsole.MarkupLine($"[grey]--postgres: using the {Markup.Escape(given)}; each workload gets a new database, dropped at the end.[/]");
        return new BenchPostgres(value, null, given, given);
    }

    /// <summary>Creates an empty database for one workload and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string purpose, CancellationToken ct)
    {
        var name = $"converge_bench_{_run}_{purpose}";
        try
        {
            var connectionString = await PrivatePostgres.CreateDatabaseAsync(_server, name, ct);
            _databases.Add(name);
            return connectionString;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new InvalidOperationException($"--postgres: could not create the database {name} ({e.MessageText}). The benchmark needs a user allowed to create databases (CREATEDB), or --postgres auto.", e);
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"--postgres: could not create the database {name}: {e.Message}", e);
        }
    }

    /// <summary>The CPU seconds used so far by the private server's processes (the postmaster and its children), or NaN.</summary>
    public double CpuSeconds()
    {
        if (PostmasterId is not { } postmaster)
        {
            return double.NaN;
        }

        var total = LiveBenchShared.CpuSeconds(postmaster);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid) && pid != postmaster && ParentOf(pid) == postmaster && LiveBenchShared.CpuSeconds(pid) is var cpu && !double.IsNaN(cpu))
            {
                total += cpu;
            }
        }

        return total;
    }

    public async ValueTask DisposeAsync()
    {
        if (_private is not null)
        {
            _private.Stop();
            AnsiConsole.MarkupLine($"[grey]Stopped the private PostgreSQL and deleted {Markup.Escape(_private.Directory)}.[/]");
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        foreach (var name in _databases)
        {
            try
            {
                await PrivatePostgres.DropDatabaseAsync(_server, name, timeout.Token);
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException)
            {
                AnsiConsole.MarkupLine($"[yellow]Could not drop the database {name}: {Markup.Escape(e.Message)}[/]");
            }
        }
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return -1;
        }
    }
}
