using Converge.Server.PostgreSql;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Converge's PostgreSQL store with a service collection.</summary>
public static class ConvergePostgreSqlServiceCollectionExtensions
{
    /// <summary>Keeps the sync server's data in a PostgreSQL database instead of the embedded SQLite file: <c>services.AddConvergeServer(…).UsePostgreSql(connectionString)</c>.</summary>
    /// <param name="builder">The server's builder, from <c>AddConvergeServer</c>.</param>
    /// <param name="connectionString">The Npgsql connection string of the database; its user needs to create a schema and tables there, the first time.</param>
    /// <returns>The builder.</returns>
    /// <remarks>
    /// <para>
    /// Registers a <see cref="PostgreSqlSyncStore"/> as the server's store, which then does not need
    /// <c>DatabasePath</c>. Calling it again with the same connection string changes nothing.
    /// </para>
    /// <para>
    /// Several server nodes may use the same database: the first to start creates the schema, in the <c>converge</c> schema
    /// of the database. Statements are auto-prepared (<c>Max Auto Prepare=32</c>) unless the connection string sets
    /// <c>Max Auto Prepare</c>. <see cref="ILoggerFactory"/> is taken from the container when registered there.
    /// </para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">The PostgreSQL store was registered already, with another connection string.</exception>
    public static IConvergeServerBuilder UsePostgreSql(this IConvergeServerBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddConvergePostgreSql(connectionString);
        return builder;
    }

    /// <summary>Keeps the sync server's data in a PostgreSQL database: registers a <see cref="PostgreSqlSyncStore"/> as the server's store, before or after <c>AddConvergeServer</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="connectionString">The Npgsql connection string of the database; its user needs to create a schema and tables there, the first time.</param>
    /// <returns>The services.</returns>
    /// <remarks>
    /// The same as <see cref="UsePostgreSql"/>, for code that registers the store apart from the server. The order does
    /// not matter: the store registered last is the server's, and the embedded SQLite store, which <c>AddConvergeServer</c>
    /// registers when it finds no store, is then never opened. Calling it again with the same connection string changes
    /// nothing.
    /// </remarks>
    /// <exception cref="InvalidOperationException">This method was called already, with another connection string.</exception>
    public static IServiceCollection AddConvergePostgreSql(this IServiceCollection services, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (services.FirstOrDefault(d => d.ServiceType == typeof(PostgreSqlStoreRegistration))?.ImplementationInstance is PostgreSqlStoreRegistration registered)
        {
            return registered.ConnectionString == connectionString
                ? services
                : throw new InvalidOperationException("The Converge PostgreSQL store was registered already, with another connection string.");
        }

        services.AddSingleton(new PostgreSqlStoreRegistration(connectionString));
        services.AddSingleton(sp => PostgreSqlSyncStore.Create(connectionString, sp.GetService<ILoggerFactory>()));
        services.AddSingleton<ISyncStore>(sp => sp.GetRequiredService<PostgreSqlSyncStore>());
        return services;
    }

    /// <summary>Marks the collection as set up by <see cref="AddConvergePostgreSql"/>, with the connection string it was given.</summary>
    private sealed record PostgreSqlStoreRegistration(string ConnectionString);
}
