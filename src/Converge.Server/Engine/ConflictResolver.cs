using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Live;
using Converge.Server.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Engine;

/// <summary>Resolves conflicts on a person's choice (the resolve endpoint): the document and the record change in one store transaction.</summary>
/// <remarks>A resolution that comes as a mutation of a push is the push's own (<see cref="PushApplier"/>).</remarks>
internal sealed class ConflictResolver
{
    private readonly ISyncStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly LiveHub? _live;
    private readonly string _nodeId;

    public ConflictResolver(ISyncStore store, TimeProvider time, ILogger logger, ServerMetrics metrics, LiveHub? live, string nodeId)
    {
        _store = store;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _live = live;
        _nodeId = nodeId;
    }

    /// <summary>Resolves an open conflict: keeps the server's values, writes the client's, or writes edited values.</summary>
    /// <param name="id">The conflict's id.</param>
    /// <param name="scope">The scope the caller was authorized for; a conflict elsewhere is not found.</param>
    /// <param name="choice">The choice.</param>
    /// <param name="fields">The edited values, for <see cref="ResolveChoice.Edited"/>, already checked against the conflict's fields.</param>
    /// <param name="clock">The server's clock.</param>
    /// <param name="epoch">The store's epoch, which live changes carry.</param>
    /// <param name="cancellationToken">Stops the resolution before it commits.</param>
    /// <returns>The resolved record; the record as it is when it was already resolved; <see langword="null"/> when not found.</returns>
    public async Task<ConflictRecord?> ResolveAsync(string id, string scope, ResolveChoice choice, IReadOnlyDictionary<string, JsonElement>? fields, HybridClock clock, string? epoch, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        ConflictRecord resolved;
        var transaction = await _store.BeginAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            var conflict = await transaction.ReadConflictAsync(id, cancellationToken).ConfigureAwait(false);
            if (conflict is null || conflict.Scope != scope)
            {
                return null;
            }

            if (conflict.Status == ConflictStatus.Resolved)
            {
                // The first resolution stands; asking again changes nothing.
                return conflict;
            }

            var revision = await transaction.ReadScopeRevisionAsync(scope, cancellationToken).ConfigureAwait(false);
            var before = revision;
            DocumentChange? change = null;
            if (choice != ResolveChoice.Server)
            {
                var key = new DocumentKey(conflict.Scope, conflict.Collection, conflict.DocumentId);
                var found = new Dictionary<DocumentKey, DocumentState>(1);
                await transaction.ReadDocumentsAsync([key], found, cancellationToken).ConfigureAwait(false);
                found.TryGetValue(key, out var current);
                IReadOnlyDictionary<string, JsonElement>? values = fields;
                List<string>? remove = null;
                if (choice == ResolveChoice.Client)
                {
                    var clientValues = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
                    foreach (var field in conflict.Fields)
                    {
                        if (field.Client.Removed)
                        {
                            (remove ??= []).Add(field.Name);
                        }
                        else
                        {
                            clientValues[field.Name] = field.Client.Value;
                        }
                    }

                    values = clientValues;
                }

                var outcome = DocumentMerge.ApplyResolution(current, values, remove, clock.Now(), clock.Node, revision + 1);
                if (outcome.Changed)
                {
                    revision++;
                    await transaction.WriteDocumentAsync(key, outcome.State, null, cancellationToken).ConfigureAwait(false);
                    change = new DocumentChange { Collection = key.Collection, DocumentId = key.Id, State = outcome.State };
                }
            }

            revision++;
            var resolution = choice switch
            {
                ResolveChoice.Server => "server",
                ResolveChoice.Client => "client",
                _ => "edited",
            };
            resolved = conflict with { Status = ConflictStatus.Resolved, Resolution = resolution, Revision = revision };
            await transaction.WriteConflictAsync(resolved, now, null, cancellationToken).ConfigureAwait(false);
            await transaction.WriteScopeRevisionAsync(scope, revision, cancellationToken).ConfigureAwait(false);
            var stamp = clock.Now();
            await transaction.WriteClockAsync(stamp, cancellationToken).ConfigureAwait(false);
            if (_store is ICommitFeed feed)
            {
                await feed.AnnounceAsync(transaction, new CommitNotice { Node = _nodeId, Scope = scope, After = before, Cursor = revision }, cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
            _live?.Publish(scope, before, revision, change is null ? [] : [change], [resolved], stamp, epoch);
        }

        _metrics.ConflictsResolved.Add(1);
        Log.ConflictResolved(_logger, id, resolved.Resolution!);
        return resolved;
    }
}

/// <summary>The choice of a conflict resolution.</summary>
internal enum ResolveChoice
{
    Server,
    Client,
    Edited,
}
