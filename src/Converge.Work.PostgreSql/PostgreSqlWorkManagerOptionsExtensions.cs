using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>Puts Converge.Work's store in PostgreSQL, where several nodes share one queue.</summary>
public static class PostgreSqlWorkManagerOptionsExtensions
{
    /// <summary>Keeps the work in a PostgreSQL database instead of a SQLite file; every scheduler on the database is a node of one cluster.</summary>
    /// <param name="options">The scheduler's options; <see cref="WorkManagerOptions.DatabasePath"/> is then not used.</param>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="configure">Configures the store: schema, lease, node name.</param>
    /// <returns>The options.</returns>
    /// <remarks>
    /// <para>
    /// Each node claims due work with <c>FOR UPDATE SKIP LOCKED</c>, so nodes never wait for each other's claims, and
    /// holds a lease on what it runs, renewed every third of <see cref="PostgreSqlWorkStoreOptions.LeaseDuration"/>.
    /// When a node dies, another takes its work over once the lease has run out and runs it again (at-least-once, the
    /// attempt counted, stop reason <see cref="StopReason.ProcessDied"/>). A node that enqueues or cancels wakes the
    /// others with <c>NOTIFY</c>; every node also looks for due work at each renewal, so a lost notification only delays.
    /// </para>
    /// <para>The schema is created and migrated by the first node that opens the database, under an advisory lock.</para>
    /// </remarks>
    /// <exception cref="ArgumentException">The connection string is empty or the store options are invalid.</exception>
    public static WorkManagerOptions UsePostgreSql(this WorkManagerOptions options, string connectionString, Action<PostgreSqlWorkStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var store = new PostgreSqlWorkStoreOptions();
        configure?.Invoke(store);
        var errors = store.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid PostgreSqlWorkStoreOptions: " + string.Join(" ", errors), nameof(configure));
        }

        options.StoreProvider = new PostgreSqlWorkStoreProvider(connectionString, store);
        return options;
    }

    /// <summary>Opens the PostgreSQL store for a manager, once the manager has checked the contract version.</summary>
    private sealed class PostgreSqlWorkStoreProvider(string connectionString, PostgreSqlWorkStoreOptions options) : IWorkStoreProvider
    {
        /// <summary>Gets the contract version this package was compiled against: the constant is copied into this assembly at build time.</summary>
        public int ContractVersion => WorkStoreContract.Version;

        public IWorkStore Open(WorkStoreContext context) => PostgreSqlWorkStore.Open(connectionString, options, context);
    }
}
