using Microsoft.Extensions.Logging;

namespace Converge.Server.PostgreSql;

/// <summary>The PostgreSQL store's log events. Ids are stable; messages never carry document contents or credentials.</summary>
internal static partial class Log
{
    [LoggerMessage(4000, LogLevel.Information, "Converge PostgreSQL store migrated database {Database} from schema version {From} to {To}")]
    public static partial void SchemaMigrated(ILogger logger, string database, int from, int to);

    [LoggerMessage(4001, LogLevel.Debug, "Converge PostgreSQL store opened database {Database} at schema version {Version}")]
    public static partial void SchemaCurrent(ILogger logger, string database, int version);

    [LoggerMessage(4002, LogLevel.Information, "Converge PostgreSQL store rotated the epoch of database {Database}")]
    public static partial void EpochRotated(ILogger logger, string database);

    [LoggerMessage(4003, LogLevel.Debug, "Listening for the commits of other nodes on database {Database}")]
    public static partial void Listening(ILogger logger, string database);

    [LoggerMessage(4004, LogLevel.Warning, "The connection listening for other nodes' commits on database {Database} failed; listening again in {Delay}")]
    public static partial void ListenFailed(ILogger logger, Exception exception, string database, TimeSpan delay);
}
