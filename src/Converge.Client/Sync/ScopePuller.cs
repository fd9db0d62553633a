using Converge.Client.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Client.Sync;

/// <summary>Pulls what changed on the server in one scope, from the scope's cursor, in pages.</summary>
internal sealed class ScopePuller(ClientStore store, ClientIdentity identity, PageApplier pages, int pageSize, ILogger logger)
{
    private readonly ClientStore _store = store;
    private readonly ClientIdentity _identity = identity;
    private readonly PageApplier _pages = pages;
    private readonly int _pageSize = pageSize;
    private readonly ILogger _logger = logger;

    /// <summary>Pulls a scope from its cursor to the end, page by page, each page applied with its cursor in one transaction.</summary>
    public async Task PullAsync(SyncHttp http, string scope, SyncRound round, CancellationToken cancellationToken)
    {
        long cursor;
        string? epoch;
        using (var connection = _store.OpenRead())
        {
            (cursor, epoch) = StoreReads.CursorAndEpoch(connection, scope);
        }

        var newEpoch = false;
        var restart = false;
        while (true)
        {
            using var page = await http.PullAsync(scope, cursor, _pageSize, cancellationToken).ConfigureAwait(false);
            if (page.Scope != scope || page.Cursor < 0 || (!page.Reset && page.Cursor < cursor))
            {
                throw new ConvergeSyncException($"The server answered a pull of scope '{scope}' after {cursor} with a page of scope '{page.Scope}' ending at cursor {page.Cursor}.");
            }

            if (page.Epoch is { } pageEpoch && epoch is not null && !string.Equals(pageEpoch, epoch, StringComparison.Ordinal) && cursor > 0)
            {
                // The server's store is another history (restored from a backup): the cursor means nothing there, and the
                // documents held may be gone or different. Downloaded again from 0 as after a reset, keeping the outbox.
                if (newEpoch)
                {
                    throw new ConvergeSyncException($"The server changed the epoch of scope '{scope}' again while it was downloaded anew.");
                }

                Log.EpochChanged(_logger, scope, epoch, pageEpoch);
                newEpoch = restart = true;
                epoch = pageEpoch;
                cursor = 0;
                continue;
            }

            var empty = page.Changes.Count == 0 && (page.Conflicts?.Count ?? 0) == 0;
            if (page.HasMore && empty && !page.Reset && page.Cursor == cursor)
            {
                throw new ConvergeSyncException($"The server says scope '{scope}' has more changes after {cursor} but sent none.");
            }

            _identity.Clock.TryReceive(page.Clock, out _);
            var applied = await _pages.ApplyRawAsync(scope, page.Changes, page.Conflicts, page.Cursor, page.Reset || restart, cancellationToken, page.ConflictJson, page.Epoch, forgetServerStates: restart).ConfigureAwait(false);
            restart = false;
            epoch = page.Epoch ?? epoch;
            round.Pulled += applied.Documents;
            round.ConflictsOpened += applied.ConflictsOpened;
            round.ConflictsResolved += applied.ConflictsResolved;
            round.Progress(SyncPhase.Pull, scope);
            cursor = page.Cursor;
            if (!page.HasMore)
            {
                return;
            }
        }
    }
}
