using System.Collections.Concurrent;
using Converge.Protocol.Messages;
using Converge.Server.Engine;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Live;

/// <summary>The live connections of this server, by scope; hands each commit's changes to the connections that follow its scopes.</summary>
/// <remarks>
/// A commit's message is written once and shared by every connection it goes to; each connection holds at most its
/// <see cref="ConvergeServerOptions.LiveSendQueueBytes"/> of them. Publishing never waits for a connection.
/// </remarks>
internal sealed class LiveHub
{
    private readonly ConcurrentDictionary<string, Followers> _byScope = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<LiveConnection, bool> _all = new();
    private readonly Lock _lock = new();
    private readonly ConvergeServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _logger;

    public LiveHub(ConvergeServerOptions options, ServerMetrics metrics, ILogger logger)
    {
        _options = options;
        _metrics = metrics;
        _logger = logger;
        metrics.ObserveLiveQueue(() => _all.Keys.Sum(c => c.QueuedBytes));
    }

    /// <summary>Gets the number of open live connections.</summary>
    public int ConnectionCount => _all.Count;

    /// <summary>Tells whether any connection follows a scope, so a commit nobody follows costs nothing.</summary>
    public bool IsFollowed(string scope) => _byScope.ContainsKey(scope);

    public void Add(LiveConnection connection)
    {
        lock (_lock)
        {
            foreach (var scope in connection.Scopes)
            {
                if (!_byScope.TryGetValue(scope, out var followers))
                {
                    followers = new Followers();
                    _byScope[scope] = followers;
                }

                followers.Add(connection);
            }
        }

        _all.TryAdd(connection, true);
    }

    public void Remove(LiveConnection connection)
    {
        lock (_lock)
        {
            foreach (var scope in connection.Scopes)
            {
                if (_byScope.TryGetValue(scope, out var followers) && followers.Remove(connection))
                {
                    _byScope.TryRemove(scope, out _);
                }
            }
        }

        _all.TryRemove(connection, out _);
    }

    /// <summary>Sends a committed change of one scope to the connections that follow it.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="after">The scope's revision before the commit.</param>
    /// <param name="cursor">The scope's revision after it.</param>
    /// <param name="documents">The documents the commit changed in the scope, with their new states.</param>
    /// <param name="conflicts">The conflict records the commit opened or resolved in the scope.</param>
    /// <param name="clock">The server's clock.</param>
    /// <param name="epoch">The store's epoch, sent with the page as a pull would.</param>
    public void Publish(string scope, long after, long cursor, IReadOnlyList<DocumentChange> documents, IReadOnlyList<ConflictRecord>? conflicts, Protocol.HybridTimestamp clock, string? epoch)
    {
        if (!_byScope.TryGetValue(scope, out var followers))
        {
            return;
        }

        var connections = followers.Snapshot();
        Publish(after, new PullPage { Scope = scope, Cursor = cursor, Clock = clock, Epoch = epoch, Documents = documents, Conflicts = conflicts }, connections);
    }

    /// <summary>Sends a page of a scope's changes after a cursor (read from the store after another node's commit) to the connections that follow the scope.</summary>
    public void Publish(long after, PullPage page)
    {
        if (_byScope.TryGetValue(page.Scope, out var followers))
        {
            Publish(after, page, followers.Snapshot());
        }
    }

    /// <summary>Tells the connections that follow a scope to pull it.</summary>
    public void Poke(string scope)
    {
        if (_byScope.TryGetValue(scope, out var followers))
        {
            var frame = LiveFrames.Poke(scope);
            foreach (var connection in followers.Snapshot())
            {
                connection.Send(scope, frame);
            }
        }
    }

    /// <summary>Tells every connection to pull every scope it follows (commits may have been missed).</summary>
    public void PokeAll()
    {
        foreach (var scope in _byScope.Keys)
        {
            Poke(scope);
        }
    }

    private void Publish(long after, PullPage page, LiveConnection[] connections)
    {
        var scope = page.Scope;

        // The size is known before the message is written: a commit too large to hold for every connection is never
        // built whole; they pull it, in pages.
        var estimate = page.EstimateBytes();
        byte[] frame;
        if (estimate > _options.LiveMaxMessageBytes)
        {
            Log.LiveCommitTooLarge(_logger, scope, estimate, page.DocumentCount);
            frame = LiveFrames.Poke(scope);
        }
        else
        {
            frame = LiveFrames.Changes(after, page);
            if (frame.Length > _options.LiveMaxMessageBytes)
            {
                Log.LiveCommitTooLarge(_logger, scope, frame.Length, page.DocumentCount);
                frame = LiveFrames.Poke(scope);
            }
        }

        foreach (var connection in connections)
        {
            connection.Send(scope, frame);
        }

        _metrics.LiveMessages.Add(connections.Length);
    }

    /// <summary>
    /// The connections that follow one scope: a set, changed in O(1) as connections come and go, and an array of them
    /// made again only when a publish finds it out of date, so thousands of connections arriving cost no copying.
    /// </summary>
    private sealed class Followers
    {
        private readonly HashSet<LiveConnection> _set = [];
        private volatile LiveConnection[]? _snapshot;

        /// <summary>Adds a connection; called under the hub's lock.</summary>
        public void Add(LiveConnection connection)
        {
            lock (_set)
            {
                _set.Add(connection);
                _snapshot = null;
            }
        }

        /// <summary>Removes a connection; called under the hub's lock. Returns whether none is left.</summary>
        public bool Remove(LiveConnection connection)
        {
            lock (_set)
            {
                _set.Remove(connection);
                _snapshot = null;
                return _set.Count == 0;
            }
        }

        public LiveConnection[] Snapshot()
        {
            if (_snapshot is { } snapshot)
            {
                return snapshot;
            }

            lock (_set)
            {
                return _snapshot ??= [.. _set];
            }
        }
    }
}
