using Microsoft.Extensions.Logging;

namespace Converge.Client;

/// <summary>The client's log messages. Event ids 2000-2099 are stable; no message carries document contents or ids.</summary>
internal static partial class Log
{
    [LoggerMessage(3000, LogLevel.Information, "Converge client {ClientId} opened {Path} with {ScopeCount} scopes; {Pending} mutations pending")]
    public static partial void Opened(ILogger logger, string clientId, string path, int scopeCount, long pending);

    [LoggerMessage(3001, LogLevel.Debug, "Converge client {ClientId} closed")]
    public static partial void Closed(ILogger logger, string clientId);

    [LoggerMessage(3010, LogLevel.Debug, "Sync round started")]
    public static partial void SyncStarted(ILogger logger);

    [LoggerMessage(3011, LogLevel.Information, "Sync round done in {Duration}: {Pushed} pushed, {Pulled} pulled, {ConflictsOpened} conflicts opened, {ConflictsResolved} resolved, {Rejected} rejected, {Restamped} restamped")]
    public static partial void SyncCompleted(ILogger logger, TimeSpan duration, int pushed, int pulled, int conflictsOpened, int conflictsResolved, int rejected, int restamped);

    [LoggerMessage(3012, LogLevel.Information, "Sync round failed: the server cannot be reached; the client is offline")]
    public static partial void SyncOffline(ILogger logger, Exception exception);

    [LoggerMessage(3013, LogLevel.Warning, "Sync round failed")]
    public static partial void SyncFailed(ILogger logger, Exception exception);

    [LoggerMessage(3014, LogLevel.Debug, "Sync status {Previous} -> {Status}")]
    public static partial void StatusChanged(ILogger logger, SyncStatus previous, SyncStatus status);

    [LoggerMessage(3015, LogLevel.Debug, "Sync round cancelled by the caller")]
    public static partial void SyncCancelled(ILogger logger);

    [LoggerMessage(3020, LogLevel.Debug, "Pushing {Count} mutations, ids {First} to {Last}")]
    public static partial void Pushing(ILogger logger, int count, long first, long last);

    [LoggerMessage(3021, LogLevel.Warning, "Mutation {MutationId} ({Kind} in collection {Collection}) was rejected by the server: {Reason}")]
    public static partial void MutationRejected(ILogger logger, long mutationId, Converge.Protocol.Messages.MutationKind kind, string collection, string? reason);

    [LoggerMessage(3022, LogLevel.Warning, "Mutation {MutationId} was re-stamped by the server with {Restamped}: this device's clock is ahead of the server's")]
    public static partial void MutationRestamped(ILogger logger, long mutationId, Converge.Protocol.HybridTimestamp restamped);

    [LoggerMessage(3023, LogLevel.Warning, "The server refused a push of {Count} mutations as too large ({Code}); retrying with batches of {Next}")]
    public static partial void BatchHalved(ILogger logger, int count, string? code, int next);

    [LoggerMessage(3043, LogLevel.Debug, "A push sent ahead was abandoned because the round ended with an error; its mutations stay in the outbox")]
    public static partial void PushAbandoned(ILogger logger, Exception exception);

    [LoggerMessage(3024, LogLevel.Warning, "The server refused writes to scope {Scope}; its {Count} pending mutations are set aside, behind the others, and sent again next round")]
    public static partial void ScopeSetAside(ILogger logger, string scope, int count);

    [LoggerMessage(3025, LogLevel.Warning, "The server found client {OldId} reusing mutation ids (its store was restored or copied): the client is now {NewId}, with its {Count} pending mutations renumbered")]
    public static partial void ClientIdRenewed(ILogger logger, string oldId, string newId, long count);

    [LoggerMessage(3026, LogLevel.Debug, "Rebuilt {Count} documents of scope {Scope} that the server answered without a new revision")]
    public static partial void StaleRebuilt(ILogger logger, string scope, int count);

    [LoggerMessage(3030, LogLevel.Debug, "Applied a page of scope {Scope}: {Changes} documents, {Conflicts} conflict records, cursor {Cursor}")]
    public static partial void PageApplied(ILogger logger, string scope, int changes, int conflicts, long cursor);

    [LoggerMessage(3031, LogLevel.Warning, "The server reset scope {Scope}: {Dropped} local documents without pending writes dropped, downloading again")]
    public static partial void ScopeReset(ILogger logger, string scope, int dropped);

    [LoggerMessage(3032, LogLevel.Debug, "Skipped a stale change of collection {Collection} at revision {Revision}; revision {Stored} is stored")]
    public static partial void StaleChangeSkipped(ILogger logger, string collection, long revision, long stored);

    [LoggerMessage(3033, LogLevel.Warning, "The server refused pulling scope {Scope}; the other scopes sync")]
    public static partial void PullForbidden(ILogger logger, string scope);

    [LoggerMessage(3034, LogLevel.Warning, "The server of scope {Scope} has another store epoch ({Stored} -> {Epoch}): it was restored from a backup; downloading the scope again")]
    public static partial void EpochChanged(ILogger logger, string scope, string stored, string epoch);

    [LoggerMessage(3040, LogLevel.Error, "A change event handler threw; the change itself is committed")]
    public static partial void HandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(3041, LogLevel.Information, "Conflict {ConflictId} in collection {Collection} is {Status}")]
    public static partial void ConflictStored(ILogger logger, string conflictId, string collection, string status);

    [LoggerMessage(3042, LogLevel.Information, "Conflict {ConflictId} resolved locally ({Choice}); the resolution is in the outbox")]
    public static partial void ConflictResolvedLocally(ILogger logger, string conflictId, string choice);

    [LoggerMessage(3044, LogLevel.Information, "Live: connected and caught up")]
    public static partial void LiveConnected(ILogger logger);

    [LoggerMessage(3045, LogLevel.Warning, "Live: the connection is lost or refused; trying again in {Delay}")]
    public static partial void LiveLost(ILogger logger, Exception? exception, TimeSpan delay);

    [LoggerMessage(3046, LogLevel.Debug, "Live: status {Previous} -> {Status}")]
    public static partial void LiveStatusChanged(ILogger logger, LiveStatus previous, LiveStatus status);

    [LoggerMessage(3047, LogLevel.Debug, "Live: the server poked scope {Scope}; pulling it")]
    public static partial void LivePoked(ILogger logger, string scope);

    [LoggerMessage(3048, LogLevel.Debug, "Live: a page of scope {Scope} up to {PageCursor} is held already (cursor {Cursor})")]
    public static partial void LiveChangeHeld(ILogger logger, string scope, long pageCursor, long cursor);

    [LoggerMessage(3049, LogLevel.Debug, "Live: a page of scope {Scope} follows {After} but the cursor is {Cursor}; pulling the scope")]
    public static partial void LiveGap(ILogger logger, string scope, long after, long cursor);
}
