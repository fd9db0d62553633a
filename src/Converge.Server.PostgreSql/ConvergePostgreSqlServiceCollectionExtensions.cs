using Converge.Server.PostgreSql;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Converge's PostgreSQL store with a service collection.</summary>
public static class ConvergePostgreSqlServiceCollectionExtensions
{
    /// <summary>Keeps the sync server's data in a PostgreSQL database: registers a <see cref="PostgreSqlSyncStore"/> as the <see cref="ISyncStore"/>. Call it before <c>AddConvergeServer</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="connectionString">The Npgsql connection string of the database; its user needs to create a schema and tables there, the first time.</param>
    /// <returns>The services.</returns>
    /// <remarks>
    /// <para>
    /// The order matters: <c>AddConvergeServer</c> keeps an <see cref="ISyncStore"/> registered before it (and then does
    /// not require <c>DatabasePath</c>), but registers its embedded SQLite store when none is. Calling this method after
    /// <c>AddConvergeServer</c> therefore throws, rather than leave the server on SQLite. Calling it again with the same
    /// connection string changes nothing.
    /// </para>
    /// <para>
    /// Several server nodes may use the same database: the first to start creates the schema, in the <c>converge</c> schema
    /// of the database. Statements are auto-prepared (<c>Max Auto Prepare=32</c>) unless the connection string sets
    /// <c>Max Auto Prepare</c>. <see cref="ILoggerFactory"/> is taken from the container when registered there.
    /// </para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">Another store is registered already, or this method was called with another connection string.</exception>
    public static IServiceCollection AddConvergePostgreSql(this IServiceCollection services, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (services.FirstOrDefault(d => d.ServiceType == typeof(PostgreSqlStoreRegistration))?.ImplementationInstance is PostgreSqlStoreRegistration registered)
        {
            return registered.ConnectionString == connectionString
                ? services
                : throw new InvalidOperationException("AddConvergePostgreSql was called already, with another connection string.");
        }

        if (services.Any(d => d.ServiceType == typeof(ISyncStore)))
        {
            throw new InvalidOperationException(
                "Another ISyncStore is registered already. Call AddConvergePostgreSql before AddConvergeServer, which registers the embedded SQLite store when no store is registered.");
        }

        services.AddSingleton(new PostgreSqlStoreRegistration(connectionString));
        services.AddSingleton(sp => PostgreSqlSyncStore.Create(connectionString, sp.GetService<ILoggerFactory>()));
        services.AddSingleton<ISyncStore>(sp => sp.GetRequiredService<PostgreSqlSyncStore>());
        return services;
    }

    /// <summary>Marks the collection as set up by <see cref="AddConvergePostgreSql"/>, with the connection string it was given.</summary>
    private sealed record PostgreSqlStoreRegistration(string ConnectionString);
}
