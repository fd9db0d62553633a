using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Converge.Tests.Shared;

/// <summary>
/// The PostgreSQL server of a test run: the one <see cref="Variable"/> names, or else a private throwaway server started
/// once per test process from the machine's PostgreSQL binaries, stopped and deleted when the process exits.
/// </summary>
/// <remarks>
/// Compiled into each test project that needs it (a linked file). Tests take a fresh database each with
/// <see cref="CreateDatabaseAsync"/>. Without a server to use the tests fail, saying what to install: they never skip.
/// </remarks>
internal sealed class PostgresServer
{
    /// <summary>The environment variable that names a server to use instead of a private one: an Npgsql connection string whose user may create databases.</summary>
    public const string Variable = "CONVERGE_TEST_POSTGRES";

    private static readonly Lazy<Task<PostgresServer>> s_instance = new(() => Task.Run(StartAsync));

    /// <summary>Tells this process's databases from those of other test runs on a shared server.</summary>
    private static readonly string s_run = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    private readonly NpgsqlDataSource _admin;
    private int _created;

    private PostgresServer(string connectionString)
    {
        ConnectionString = connectionString;
        _admin = NpgsqlDataSource.Create(connectionString);
    }

    /// <summary>Gets the connection string of the server's maintenance database.</summary>
    public string ConnectionString { get; }

    /// <summary>Gets the server, starting it on first use.</summary>
    /// <exception cref="InvalidOperationException">No PostgreSQL is installed and <see cref="Variable"/> is not set, or the server did not start.</exception>
    public static Task<PostgresServer> GetAsync() => s_instance.Value;

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"converge_test_{s_run}_{Interlocked.Increment(ref _created)}";
        await using (var command = _admin.CreateCommand($"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"))
        {
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>, closing the connections still open to it.</summary>
    public async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        await using var command = _admin.CreateCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<PostgresServer> StartAsync()
    {
        var given = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(given))
        {
            return new PostgresServer(given);
        }

        var bin = FindBinaries() ?? throw new InvalidOperationException(
            $"The PostgreSQL tests need PostgreSQL: install its server binaries (Debian: apt-get install postgresql), or set {Variable} to the connection string of a server where the tests may create databases.");
        var started = await PrivateServer.StartAsync(bin);
        var server = new PostgresServer(started.ConnectionString);
        await using (var check = server._admin.CreateCommand("SELECT 1"))
        {
            await check.ExecuteScalarAsync();
        }

        return server;
    }

    /// <summary>The folder of <c>initdb</c> and <c>pg_ctl</c>: the highest version under /usr/lib/postgresql, or <c>pg_config --bindir</c>.</summary>
    private static string? FindBinaries()
    {
        static bool Complete(string dir) => File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl")) && File.Exists(Path.Combine(dir, "postgres"));

        if (Directory.Exists("/usr/lib/postgresql"))
        {
            var found = Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : -1))
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
            return result.ExitCode == 0 && Complete(dir) ? dir : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no pg_config on PATH
        }
    }

    /// <summary>A server in a temp folder, on 127.0.0.1 and a free port, run as an unprivileged user (PostgreSQL refuses root).</summary>
    private sealed class PrivateServer
    {
        private const string User = "postgres";

        private readonly string _bin;
        private readonly string _directory;
        private readonly bool _asRoot;
        private int _stopped;

        private PrivateServer(string bin, string directory, bool asRoot)
        {
            _bin = bin;
            _directory = directory;
            _asRoot = asRoot;
        }

        public string ConnectionString { get; private set; } = "";

        private string Data => Path.Combine(_directory, "data");

        public static async Task<PrivateServer> StartAsync(string bin)
        {
            var asRoot = Environment.UserName == "root";
            var directory = Directory.CreateTempSubdirectory("converge-pg-").FullName;
            var server = new PrivateServer(bin, directory, asRoot);
            try
            {
                if (asRoot)
                {
                    Command.Check(Command.Run("chown", [$"{User}:", directory]), "chown");
                }

                server.Watch();
                AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Stop();
                Command.Check(server.RunAsServerUser("initdb", ["-D", server.Data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]), "initdb");

                // The port is free when asked; another process could take it before the server binds it, so a failed start retries.
                for (var attempt = 1; ; attempt++)
                {
                    var port = FreePort();
                    var options = $"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={directory} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300";
                    var start = server.RunAsServerUser("pg_ctl", ["-D", server.Data, "-l", Path.Combine(directory, "server.log"), "-o", options, "-w", "-t", "60", "start"]);
                    if (start.ExitCode == 0)
                    {
                        server.ConnectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Timeout=30;Command Timeout=60";
                        return server;
                    }

                    if (attempt == 3)
                    {
                        var log = File.Exists(Path.Combine(directory, "server.log")) ? await File.ReadAllTextAsync(Path.Combine(directory, "server.log")) : "";
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

        /// <summary>Stops the server at once (it holds nothing worth a clean shutdown) and deletes its folder.</summary>
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
                    RunAsServerUser("pg_ctl", ["-D", Data, "-m", "immediate", "-w", "stop"]);
                }
            }
            finally
            {
                try
                {
                    Directory.Delete(_directory, recursive: true);
                }
                catch (IOException)
                {
                    // The watchdog deletes it when this process is gone.
                }
            }
        }

        /// <summary>
        /// Starts a detached watchdog that stops the server and deletes its folder once this process is gone, however it
        /// ended: a killed test host runs no exit handler, and the server, a daemon, would outlive it.
        /// </summary>
        private void Watch()
        {
            var stop = string.Join(' ', ServerUserCommand(Path.Combine(_bin, "pg_ctl"), ["-D", Data, "-m", "immediate", "-w", "stop"]).Select(Quote));
            var script = $"exec </dev/null >/dev/null 2>&1; while kill -0 {Environment.ProcessId}; do sleep 1; done; [ -f {Quote(Path.Combine(Data, "postmaster.pid"))} ] && {stop}; rm -rf {Quote(_directory)}";
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

        private Command.Result RunAsServerUser(string program, string[] arguments)
        {
            var command = ServerUserCommand(Path.Combine(_bin, program), arguments);
            return Command.Run(command[0], command[1..]);
        }

        /// <summary>The command line that runs a program as the server's user: as it is, or through runuser or setpriv when this process is root.</summary>
        private string[] ServerUserCommand(string program, string[] arguments)
        {
            if (!_asRoot)
            {
                return [program, .. arguments];
            }

            if (new[] { "/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser" }.FirstOrDefault(File.Exists) is { } runuser)
            {
                return [runuser, "-u", User, "--", program, .. arguments];
            }

            if (new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists) is { } setpriv)
            {
                return [setpriv, $"--reuid={User}", $"--regid={User}", "--init-groups", program, .. arguments];
            }

            throw new InvalidOperationException(
                $"PostgreSQL refuses to run as root, and neither runuser nor setpriv is installed to run it as '{User}' (Debian: apt-get install util-linux), or set {Variable}.");
        }

        private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }

    /// <summary>Runs a short command and collects what it prints.</summary>
    private static class Command
    {
        public readonly record struct Result(int ExitCode, string Output);

        public static Result Run(string program, string[] arguments)
        {
            var info = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in arguments)
            {
                info.ArgumentList.Add(argument);
            }

            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in 2 minutes.");
            }

            return new Result(process.ExitCode, output.GetAwaiter().GetResult() + error.GetAwaiter().GetResult());
        }

        public static void Check(Result result, string what)
        {
            if (result.ExitCode != 0)
            {
                throw new InvalidOperationException($"{what} failed with exit code {result.ExitCode}: {result.Output}");
            }
        }
    }
}
