using Microsoft.Extensions.Logging;

namespace Converge.Work;

internal static partial class PostgreSqlLog
{
    [LoggerMessage(1100, LogLevel.Information, "Work store {Store} migrated from schema version {From} to {To}")]
    public static partial void SchemaMigrated(ILogger logger, string store, int from, int to);

    [LoggerMessage(1101, LogLevel.Warning, "Took over {Count} work items whose node stopped renewing its lease; this node is {Node}")]
    public static partial void TookOver(ILogger logger, int count, string node);

    [LoggerMessage(1102, LogLevel.Warning, "Listening for other nodes' work on {Store} failed; trying again in {Delay}")]
    public static partial void ListenFailed(ILogger logger, Exception exception, string store, TimeSpan delay);

    [LoggerMessage(1103, LogLevel.Warning, "Rolling back a batch on {Store} failed; the next batch opens a new connection")]
    public static partial void RollbackFailed(ILogger logger, Exception exception, string store);
}
