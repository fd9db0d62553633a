using Converge.PostgreSql;

namespace Converge.Tests.Shared;

/// <summary>
/// The PostgreSQL server of a test run: the one <see cref="Variable"/> names, or else a private throwaway server started
/// once per test process from the machine's PostgreSQL binaries, stopped and deleted when the process exits.
/// </summary>
/// <remarks>
/// Compiled into each test project that needs it (a linked file, with test/Shared/PrivatePostgres.cs, which
/// runs the private server). Tests take a fresh database each with <see cref="CreateDatabaseAsync"/>. Without a server
/// to use the tests fail, saying what to install: they never skip.
/// </remarks>
internal sealed class PostgresServer
{
    /// <summary>The environment variable that names a server to use instead of a private one: an Npgsql connection string whose user may create databases.</summary>
    public const string Variable = "CONVERGE_TEST_POSTGRES";

    private static readonly Lazy<Task<PostgresServer>> s_instance = new(() => Task.Run(StartAsync));

    /// <summary>Tells this process's databases from those of other test runs on a shared server.</summary>
    private static readonly string s_run = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    private int _created;

    private PostgresServer(string connectionString) => ConnectionString = connectionString;

    /// <summary>Gets the connection string of the server's maintenance database.</summary>
    public string ConnectionString { get; }

    /// <summary>Gets the server, starting it on first use.</summary>
    /// <exception cref="InvalidOperationException">No PostgreSQL is installed and <see cref="Variable"/> is not set, or the server did not start.</exception>
    public static Task<PostgresServer> GetAsync() => s_instance.Value;

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync() =>
        PrivatePostgres.CreateDatabaseAsync(ConnectionString, $"converge_test_{s_run}_{Interlocked.Increment(ref _created)}", CancellationToken.None);

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>, closing the connections still open to it.</summary>
    public Task DropDatabaseAsync(string connectionString) =>
        PrivatePostgres.DropDatabaseAsync(ConnectionString, new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database!, CancellationToken.None);

    private static async Task<PostgresServer> StartAsync()
    {
        var given = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(given))
        {
            return new PostgresServer(given);
        }

        var bin = PrivatePostgres.FindBinaries() ?? throw new InvalidOperationException(
            $"The PostgreSQL tests need PostgreSQL: {PrivatePostgres.InstallHint}, or set {Variable} to the connection string of a server where the tests may create databases.");
        PrivatePostgres started;
        try
        {
            started = await PrivatePostgres.StartAsync(bin, PrivatePostgres.ScratchSettings, CancellationToken.None);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{e.Message} Or set {Variable} to the connection string of a server where the tests may create databases.", e);
        }

        var server = new PostgresServer(started.ConnectionString);
        await using (var check = new Npgsql.NpgsqlConnection(server.ConnectionString))
        {
            await check.OpenAsync();
        }

        return server;
    }
}
