using Converge.Protocol;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Engine;

/// <summary>Answers pulls: a page of a scope's changes after a cursor, with the cursor to ask from next, or a reset when the cursor no longer holds.</summary>
internal sealed class PullReader
{
    private readonly ISyncStore _store;
    private readonly ConvergeServerOptions _options;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;

    public PullReader(ISyncStore store, ConvergeServerOptions options, ILogger logger, ServerMetrics metrics)
    {
        _store = store;
        _options = options;
        _logger = logger;
        _metrics = metrics;
    }

    /// <summary>Reads a page of a scope's changes after a cursor.</summary>
    /// <param name="scope">The scope, already authorized.</param>
    /// <param name="after">The client's cursor: 0 to start, or the cursor of its last page.</param>
    /// <param name="limit">The most changes to return.</param>
    /// <param name="clock">The server's clock, whose time the page carries.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <returns>The page.</returns>
    /// <remarks>
    /// A cursor below the scope's min valid cursor (the client may have missed a deletion that compaction has since
    /// removed), or past the scope's revision (the store was restored from an older copy), answers a reset: the page
    /// starts from the beginning of the scope. Compaction keeps every item above the min valid cursor, so the cursors of
    /// a download from the start are never reset again.
    /// </remarks>
    public async Task<PullPage> ReadAsync(string scope, long after, int limit, HybridClock clock, CancellationToken cancellationToken)
    {
        var page = await ReadPageAsync(after).ConfigureAwait(false);
        var reset = after > 0 && (after < page.MinValidCursor || after > page.ScopeRevision);
        if (reset)
        {
            Log.PullReset(_logger, scope, after, page.MinValidCursor, page.ScopeRevision);
            page = await ReadPageAsync(0).ConfigureAwait(false);
        }

        var fromStart = after == 0 || reset;
        var empty = page.Count == 0 && page.ConflictCount == 0;
        long cursor;
        if (empty)
        {
            cursor = fromStart ? page.MinValidCursor : after;
        }
        else
        {
            cursor = Math.Max(
                page.Count > 0 ? page.LastRevision : 0,
                page.ConflictCount > 0 ? page.LastConflictRevision : 0);
            if (fromStart && !page.HasMore)
            {
                // Nothing above the page in this snapshot, so nothing between it and the min valid cursor either.
                cursor = Math.Max(cursor, page.MinValidCursor);
            }
        }

        _metrics.Pulls.Add(1);
        _metrics.DocumentsPulled.Add(page.Count);
        Log.Pulled(_logger, scope, after, page.Count, page.ConflictCount, cursor);
        return new PullPage
        {
            Scope = scope,
            Cursor = cursor,
            HasMore = page.HasMore,
            Reset = reset,
            Clock = clock.Now(),
            Epoch = await _store.ReadEpochAsync(cancellationToken).ConfigureAwait(false),
            Documents = page.Typed?.Documents,
            Raw = page.Raw,
            Conflicts = page.Typed?.Conflicts,
        };

        // A store that can give the states as stored JSON (the SQLite and PostgreSQL stores) has them sent without
        // building them; another store's page is used as it is.
        async Task<StorePage> ReadPageAsync(long from)
        {
            if (_store is IRawChangeReader raw)
            {
                return new StorePage(null, await raw.ReadRawChangesAsync(scope, from, limit, _options.MaxPageBytes, cancellationToken).ConfigureAwait(false));
            }

            return new StorePage(await _store.ReadChangesAsync(scope, from, limit, _options.MaxPageBytes, cancellationToken).ConfigureAwait(false), null);
        }
    }

    /// <summary>A page as a store read it: built, or with its states as stored JSON.</summary>
    private readonly record struct StorePage(ChangePage? Typed, RawChangePage? Raw)
    {
        public int Count => Raw?.Documents.Count ?? Typed!.Documents.Count;

        public long LastRevision => Raw is { } raw ? raw.Documents[^1].Revision : Typed!.Documents[^1].State.Revision;

        public int ConflictCount => Raw?.Conflicts.Count ?? Typed!.Conflicts.Count;

        public long LastConflictRevision => Raw is { } raw ? raw.Conflicts[^1].Revision : Typed!.Conflicts[^1].Revision;

        public bool HasMore => Raw?.HasMore ?? Typed!.HasMore;

        public long ScopeRevision => Raw?.ScopeRevision ?? Typed!.ScopeRevision;

        public long MinValidCursor => Raw?.MinValidCursor ?? Typed!.MinValidCursor;
    }
}
