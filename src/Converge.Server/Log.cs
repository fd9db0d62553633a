using Microsoft.Extensions.Logging;

namespace Converge.Server;

/// <summary>The server's log events. Ids are stable; messages never carry document contents.</summary>
internal static partial class Log
{
    [LoggerMessage(2000, LogLevel.Information, "Converge server ready: node {Node}, last timestamp {Clock}")]
    public static partial void ServerReady(ILogger logger, string node, string clock);

    [LoggerMessage(2001, LogLevel.Debug, "Push from client {Client}: {Count} mutations, {Applied} applied, {Merged} merged, {Conflicts} conflicts, {Rejected} rejected, {Duplicates} duplicates")]
    public static partial void PushApplied(ILogger logger, string client, int count, int applied, int merged, int conflicts, int rejected, int duplicates);

    [LoggerMessage(2002, LogLevel.Warning, "Client {Client} sent {Count} mutations stamped more than {MaxDrift} ahead of the server clock; they were re-stamped")]
    public static partial void MutationsRestamped(ILogger logger, string client, int count, TimeSpan maxDrift);

    [LoggerMessage(2003, LogLevel.Information, "Conflict {ConflictId} opened in collection {Collection} of scope {Scope}")]
    public static partial void ConflictOpened(ILogger logger, string conflictId, string collection, string scope);

    [LoggerMessage(2004, LogLevel.Information, "Conflict {ConflictId} resolved: {Resolution}")]
    public static partial void ConflictResolved(ILogger logger, string conflictId, string resolution);

    [LoggerMessage(2005, LogLevel.Error, "The custom conflict resolver of collection {Collection} threw; the mutation was rejected")]
    public static partial void ResolverFailed(ILogger logger, Exception exception, string collection);

    // The detail stays out: a parser's message can quote a character of the body.
    [LoggerMessage(2006, LogLevel.Debug, "Request {Path} refused with {Status} {Code}")]
    public static partial void RequestRefused(ILogger logger, string path, int status, string code);

    [LoggerMessage(2007, LogLevel.Information, "Principal {Principal} may not use scope {Scope}")]
    public static partial void ScopeForbidden(ILogger logger, string principal, string scope);

    [LoggerMessage(2008, LogLevel.Debug, "Pull of scope {Scope} after {After}: {Documents} documents, {Conflicts} conflicts, cursor {Cursor}")]
    public static partial void Pulled(ILogger logger, string scope, long after, int documents, int conflicts, long cursor);

    [LoggerMessage(2009, LogLevel.Information, "Pull of scope {Scope} after {After} reset: the scope's min valid cursor is {MinValid} and its revision {Revision}")]
    public static partial void PullReset(ILogger logger, string scope, long after, long minValid, long revision);

    [LoggerMessage(2010, LogLevel.Information, "Compaction removed {Tombstones} tombstones and {Conflicts} resolved conflicts older than {Cutoff} in {Scopes} scopes, and moved {Moved} items above the new min valid cursors")]
    public static partial void Compacted(ILogger logger, int tombstones, int conflicts, DateTimeOffset cutoff, int scopes, int moved);

    [LoggerMessage(2011, LogLevel.Error, "Compaction failed; it runs again at the next interval")]
    public static partial void CompactionFailed(ILogger logger, Exception exception);

    [LoggerMessage(2012, LogLevel.Error, "Health check failed: the store does not answer")]
    public static partial void HealthCheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(2013, LogLevel.Warning, "Could not save the server clock at shutdown")]
    public static partial void ClockSaveFailed(ILogger logger, Exception exception);

    [LoggerMessage(2014, LogLevel.Debug, "Live connection of {Principal} opened, following {Scopes}; {Connections} open")]
    public static partial void LiveConnected(ILogger logger, string principal, string scopes, int connections);

    [LoggerMessage(2015, LogLevel.Debug, "Live connection of {Principal} closed ({CloseStatus}); {Connections} open")]
    public static partial void LiveDisconnected(ILogger logger, Exception? exception, string principal, System.Net.WebSockets.WebSocketCloseStatus closeStatus, int connections);

    [LoggerMessage(2016, LogLevel.Information, "Live client {Principal} reads slower than scope {Scope} changes ({Queued} bytes waiting): its changes are dropped and it is poked to pull")]
    public static partial void LiveClientLagging(ILogger logger, string principal, string scope, long queued);

    [LoggerMessage(2017, LogLevel.Debug, "A commit of {Documents} documents in scope {Scope} makes a live message of about {Bytes} bytes: live clients are poked to pull it")]
    public static partial void LiveCommitTooLarge(ILogger logger, string scope, long bytes, int documents);

    [LoggerMessage(2018, LogLevel.Warning, "The commit feed of the shared store failed; live clients are told to pull, and it is listened to again")]
    public static partial void LiveFeedFailed(ILogger logger, Exception exception);

    [LoggerMessage(2019, LogLevel.Information, "The commit feed of the shared store may have missed commits of other nodes; live clients are told to pull")]
    public static partial void LiveFeedMissed(ILogger logger);

    [LoggerMessage(2024, LogLevel.Information, "Compaction removed {Clients} client progress records unused since {Cutoff}")]
    public static partial void ClientsCompacted(ILogger logger, int clients, DateTimeOffset cutoff);

    [LoggerMessage(2028, LogLevel.Debug, "Request {Path} of {Principal} refused by the {Limit} limit")]
    public static partial void RequestLimited(ILogger logger, string path, string principal, string limit);

    [LoggerMessage(2029, LogLevel.Debug, "The body of request {Path} of {Principal} did not arrive whole within {Timeout}: refused with 408")]
    public static partial void RequestBodyTimedOut(ILogger logger, string path, string principal, TimeSpan timeout);

    [LoggerMessage(2030, LogLevel.Debug, "A live message of {Principal} did not arrive whole within {Timeout}: the connection is closed")]
    public static partial void LiveMessageTimedOut(ILogger logger, string principal, TimeSpan timeout);
}
