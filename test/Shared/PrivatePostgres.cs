using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Converge.PostgreSql;

/// <summary>
/// A private, throwaway PostgreSQL server: a fresh cluster made with the machine's own binaries in a temporary folder,
/// listening on 127.0.0.1 and a free port, stopped and deleted by <see cref="Stop"/>, when this process exits, and
/// by a detached watchdog when this process is killed.
/// </summary>
/// <remarks>
/// For tests and benchmarks, never for data anyone keeps. PostgreSQL refuses to run as root, so when this process is
/// root the server runs as the <c>postgres</c> user (made by the distribution's package), through runuser or setpriv.
/// The cluster's only role is the superuser <c>postgres</c>, with trust authentication on 127.0.0.1.
/// </remarks>
internal sealed class PrivatePostgres : IDisposable
{
    /// <summary>The user the server runs as when this process is root, and the cluster's superuser.</summary>
    public const string ServerUser = "postgres";

    /// <summary>What to install when <see cref="FindBinaries"/> finds nothing.</summary>
    public const string InstallHint = "install PostgreSQL's server binaries (Debian and Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server)";

    /// <summary>
    /// Settings for a scratch server whose data may be lost: nothing is flushed to disk (<c>fsync=off</c>), so a crash
    /// of the machine may corrupt it, and commits are fastest.
    /// </summary>
    public static readonly IReadOnlyList<string> ScratchSettings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"];

    /// <summary>
    /// Settings with the durability of a SQLite store in WAL mode with <c>synchronous=NORMAL</c>: a commit does not wait
    /// for its WAL to reach the disk (the last commits may be lost if the machine fails, never to a crash of a process),
    /// and checkpoints are flushed, so the data cannot be corrupted.
    /// </summary>
    public static readonly IReadOnlyList<string> WalNormalSettings = ["synchronous_commit=off"];

    private static readonly string[] RunuserPaths = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"];
    private static readonly string[] SetprivPaths = ["/usr/bin/setpriv", "/bin/setpriv"];
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);

    private readonly bool _asRoot;
    private int _stopped;

    private PrivatePostgres(string binDirectory, string directory, bool asRoot)
    {
        BinDirectory = binDirectory;
        Directory = directory;
        _asRoot = asRoot;
    }

    /// <summary>Gets the folder of the binaries the server runs from.</summary>
    public string BinDirectory { get; }

    /// <summary>Gets the temporary folder holding the server's data, socket and log; deleted by <see cref="Stop"/>.</summary>
    public string Directory { get; }

    /// <summary>Gets the port the server listens on, on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>Gets the server's version, from the name of its binaries' folder (<c>/usr/lib/postgresql/15/bin</c>: 15), or "" when that is not a version.</summary>
    public string Version => Path.GetFileName(Path.GetDirectoryName(BinDirectory)) is { } v && double.TryParse(v, CultureInfo.InvariantCulture, out _) ? v : "";

    /// <summary>Gets the connection string of the server's maintenance database (<c>postgres</c>) as its superuser.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username={ServerUser};Database=postgres;Timeout=30;Command Timeout=60";

    /// <summary>Gets the user the server's processes run as: <see cref="ServerUser"/> when this process is root, else this process's user.</summary>
    public string RunsAs => _asRoot ? ServerUser : Environment.UserName;

    private string Data => Path.Combine(Directory, "data");

    private string LogFile => Path.Combine(Directory, "server.log");

    /// <summary>
    /// The folder of <c>initdb</c>, <c>pg_ctl</c> and <c>postgres</c>: the highest version under /usr/lib/postgresql
    /// (Debian, Ubuntu), else <c>pg_config --bindir</c>, else the folder an <c>initdb</c> on the PATH links to (or is
    /// in); null when none has all three.
    /// </summary>
    public static string? FindBinaries()
    {
        static bool Exists(string path) =>
            File.Exists(path) && (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) is not { } target || target.Exists);

        static bool Complete(string dir) =>
            Exists(Path.Combine(dir, "initdb")) && Exists(Path.Combine(dir, "pg_ctl")) && Exists(Path.Combine(dir, "postgres"));

        if (System.IO.Directory.Exists("/usr/lib/postgresql"))
        {
            var found = System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(c => Complete(c.Dir))
                .OrderByDescending(c => c.Version)
                .Select(c => c.Dir)
                .FirstOrDefault();
            if (found is not null)
            {
                return found;
            }
        }

        try
        {
            var result = Command.Run("pg_config", ["--bindir"]);
            var dir = result.Output.Trim();
            if (result.ExitCode == 0 && Complete(dir))
            {
                return dir;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No pg_config on the PATH.
        }

        // initdb runs postgres from its own folder: follow a link to the real one.
        return (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "initdb"))
            .Where(Exists)
            .Select(initdb => Path.GetDirectoryName(new FileInfo(initdb).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? initdb)!)
            .FirstOrDefault(Complete);
    }

    /// <summary>Makes a cluster in a new temporary folder and starts a server on it.</summary>
    /// <param name="binDirectory">The folder of the binaries (<see cref="FindBinaries"/>).</param>
    /// <param name="settings">Server settings as <c>name=value</c> (<see cref="ScratchSettings"/>, <see cref="WalNormalSettings"/>), on top of the address, port and socket folder.</param>
    /// <param name="cancellationToken">Stops the start; the server and its folder are then removed.</param>
    /// <returns>The running server; <see cref="Stop"/> (or <see cref="Dispose"/>) removes it.</returns>
    /// <exception cref="InvalidOperationException">The server user is missing, the server could not be made or did not start.</exception>
    public static async Task<PrivatePostgres> StartAsync(string binDirectory, IEnumerable<string> settings, CancellationToken cancellationToken)
    {
        var asRoot = Environment.UserName == "root";
        if (asRoot && !UserExists(ServerUser))
        {
            throw new InvalidOperationException(
                $"PostgreSQL refuses to run as root, and there is no user '{ServerUser}' to run it as (the postgresql package makes it; or: useradd --system {ServerUser}).");
        }

        var server = new PrivatePostgres(binDirectory, System.IO.Directory.CreateTempSubdirectory("converge-pg-").FullName, asRoot);
        try
        {
            if (asRoot)
            {
                Command.Check(await Command.RunAsync("chown", [$"{ServerUser}:", server.Directory], cancellationToken).ConfigureAwait(false), "chown");
            }

            server.Watch();
            AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Stop();
            Command.Check(
                await server.RunAsServerUserAsync("initdb", ["-D", server.Data, "-U", ServerUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], cancellationToken).ConfigureAwait(false),
                "initdb");

            var extra = string.Concat(settings.Select(s => " -c " + s));

            // The port is free when asked; another process could take it before the server binds it, so a failed start retries.
            for (var attempt = 1; ; attempt++)
            {
                var port = FreePort();
                var options = $"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={server.Directory} -c max_connections=300{extra}";
                var start = await server.RunAsServerUserAsync("pg_ctl", ["-D", server.Data, "-l", server.LogFile, "-o", options, "-w", "-t", "60", "start"], cancellationToken).ConfigureAwait(false);
                if (start.ExitCode == 0)
                {
                    server.Port = port;
                    return server;
                }

                if (attempt == 3)
                {
                    var log = File.Exists(server.LogFile) ? await File.ReadAllTextAsync(server.LogFile, cancellationToken).ConfigureAwait(false) : "";
                    throw new InvalidOperationException($"The private PostgreSQL server did not start: {start.Output}\n{log}");
                }
            }
        }
        catch
        {
            server.Stop();
            throw;
        }
    }

    /// <summary>Creates an empty database on a server and returns its connection string (that of <paramref name="serverConnectionString"/> with the new database).</summary>
    /// <param name="serverConnectionString">A connection string whose user may create databases.</param>
    /// <param name="name">The new database's name: letters, digits and underscores.</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    public static async Task<string> CreateDatabaseAsync(string serverConnectionString, string name, CancellationToken cancellationToken)
    {
        CheckName(name);
        var admin = new NpgsqlConnection(serverConnectionString);
        await using (admin.ConfigureAwait(false))
        {
            await admin.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'", admin);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        return new NpgsqlConnectionStringBuilder(serverConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database, closing the connections still open to it; nothing happens when it does not exist.</summary>
    /// <param name="serverConnectionString">A connection string, to another database of the server, whose user may drop the database.</param>
    /// <param name="name">The database's name.</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    public static async Task DropDatabaseAsync(string serverConnectionString, string name, CancellationToken cancellationToken)
    {
        CheckName(name);
        var admin = new NpgsqlConnection(serverConnectionString);
        await using (admin.ConfigureAwait(false))
        {
            await admin.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", admin);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The process id of the server's postmaster, or null when it is not running.</summary>
    public int? PostmasterId()
    {
        try
        {
            var first = File.ReadLines(Path.Combine(Data, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(first, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Stops the server at once (it holds nothing worth a clean shutdown) and deletes its folder; once, whoever calls first.</summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        try
        {
            if (File.Exists(Path.Combine(Data, "postmaster.pid")))
            {
                var command = ServerUserCommand(Path.Combine(BinDirectory, "pg_ctl"), ["-D", Data, "-m", "immediate", "-w", "stop"]);
                Command.Run(command[0], command[1..]);
            }
        }
        finally
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The watchdog deletes it when this process is gone.
            }
        }
    }

    /// <summary>Same as <see cref="Stop"/>.</summary>
    public void Dispose() => Stop();

    /// <summary>
    /// Starts a detached watchdog that stops the server and deletes its folder once this process is gone, however it
    /// ended: a killed process runs no exit handler, and the server, a daemon in a session of its own, would outlive it.
    /// </summary>
    private void Watch()
    {
        var stop = string.Join(' ', ServerUserCommand(Path.Combine(BinDirectory, "pg_ctl"), ["-D", Data, "-m", "immediate", "-w", "stop"]).Select(Quote));
        var script = $"exec </dev/null >/dev/null 2>&1; while kill -0 {Environment.ProcessId}; do sleep 1; done; [ -f {Quote(Path.Combine(Data, "postmaster.pid"))} ] && {stop}; rm -rf {Quote(Directory)}";
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "sh", "-c", script })
        {
            info.ArgumentList.Add(argument);
        }

        try
        {
            using var watchdog = Process.Start(info);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No setsid: the exit handler alone stops the server.
        }
    }

    private Task<Command.Result> RunAsServerUserAsync(string program, string[] arguments, CancellationToken cancellationToken)
    {
        var command = ServerUserCommand(Path.Combine(BinDirectory, program), arguments);
        return Command.RunAsync(command[0], command[1..], cancellationToken);
    }

    /// <summary>The command line that runs a program as the server's user: as it is, or through runuser or setpriv when this process is root.</summary>
    private string[] ServerUserCommand(string program, string[] arguments)
    {
        if (!_asRoot)
        {
            return [program, .. arguments];
        }

        if (RunuserPaths.FirstOrDefault(File.Exists) is { } runuser)
        {
            return [runuser, "-u", ServerUser, "--", program, .. arguments];
        }

        if (SetprivPaths.FirstOrDefault(File.Exists) is { } setpriv)
        {
            return [setpriv, $"--reuid={ServerUser}", $"--regid={ServerUser}", "--init-groups", program, .. arguments];
        }

        throw new InvalidOperationException(
            $"PostgreSQL refuses to run as root, and neither runuser nor setpriv is installed to run it as '{ServerUser}' (Debian: apt-get install util-linux).");
    }

    private static void CheckName(string name)
    {
        if (name.Length is 0 or > 63 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
        {
            throw new ArgumentException($"'{name}' is not a database name made of at most 63 letters, digits and underscores.", nameof(name));
        }
    }

    private static bool UserExists(string user)
    {
        try
        {
            return Command.Run("id", ["-u", user]).ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return true; // no id command: runuser will say
        }
    }

    private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs a short command and collects what it prints.</summary>
    private static class Command
    {
        public readonly record struct Result(int ExitCode, string Output);

        public static Result Run(string program, string[] arguments)
        {
            using var process = Process.Start(StartInfo(program, arguments))!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(CommandTimeout))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in {CommandTimeout.TotalMinutes} minutes.");
            }

            return new Result(process.ExitCode, output.GetAwaiter().GetResult() + error.GetAwaiter().GetResult());
        }

        public static async Task<Result> RunAsync(string program, string[] arguments, CancellationToken cancellationToken)
        {
            using var process = Process.Start(StartInfo(program, arguments))!;
            var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(CommandTimeout);
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                cancellationToken.ThrowIfCancellationRequested();
                throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in {CommandTimeout.TotalMinutes} minutes.");
            }

            return new Result(process.ExitCode, await output.ConfigureAwait(false) + await error.ConfigureAwait(false));
        }

        public static void Check(Result result, string what)
        {
            if (result.ExitCode != 0)
            {
                throw new InvalidOperationException($"{what} failed with exit code {result.ExitCode}: {result.Output}");
            }
        }

        private static ProcessStartInfo StartInfo(string program, string[] arguments)
        {
            var info = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in arguments)
            {
                info.ArgumentList.Add(argument);
            }

            return info;
        }
    }
}
