using Converge.Protocol.Messages;
using Converge.Server.Storage;

namespace Converge.Server.Engine;

/// <summary>The conflict records one push opens or adds to, written once each when the push ends.</summary>
/// <remarks>
/// A device has at most one open record per document: a later contested edit of the same document by the same device of
/// the same principal joins that record (its values replace the older ones of the same fields) instead of opening another. So a push costs
/// at most one copy of the contested values per document it touches, however many of its mutations conflict, and a
/// person settles one record per document and device. New records are bounded per document and per scope
/// (<see cref="ConvergeServerOptions.MaxOpenConflictsPerDocument"/>, <see cref="ConvergeServerOptions.MaxOpenConflictsPerScope"/>);
/// past either bound the mutation is rejected with the reason, and nothing of it applies.
/// </remarks>
internal sealed class PushConflicts(ISyncTransaction transaction, ConvergeServerOptions options, string principal, string clientId)
{
    private readonly Dictionary<DocumentKey, ConflictRecord> _records = [];
    private readonly Dictionary<string, int> _openInScope = new(StringComparer.Ordinal);
    private readonly HashSet<string> _openedIds = new(StringComparer.Ordinal);
    private HashSet<string>? _resolved;
    private Dictionary<DocumentKey, string>? _refused;

    /// <summary>Gets the records to write, in revision order.</summary>
    public IEnumerable<ConflictRecord> Records => _records.Values.OrderBy(r => r.Revision);

    /// <summary>Gets the records the push opened, as opposed to records it added to.</summary>
    public IReadOnlyList<ConflictRecord> Opened => [.. _records.Values.Where(r => _openedIds.Contains(r.Id))];

    /// <summary>Finds the open record of this device that a conflict in a document joins, or checks there is room for a new one.</summary>
    /// <returns>The record to join (or none), or why no record may be opened.</returns>
    public async ValueTask<(ConflictRecord? Joined, string? Refusal)> PrepareAsync(DocumentKey key, CancellationToken cancellationToken)
    {
        if (_records.TryGetValue(key, out var pending))
        {
            return (pending, null);
        }

        // A document refused once in this push stays refused until a resolution of this push makes room: a push of a
        // thousand refused mutations asks the store once, not a thousand times.
        if (_refused?.TryGetValue(key, out var refused) == true)
        {
            return (null, refused);
        }

        // The device's own record, found by its principal too: a client id is no secret, and another principal sending
        // it must not write into this device's record.
        var own = await transaction.ReadOpenConflictAsync(key, principal, clientId, cancellationToken).ConfigureAwait(false);
        if (own is not null && _resolved?.Contains(own.Id) != true)
        {
            return (own, null);
        }

        var count = await transaction.CountOpenConflictsAsync(key, cancellationToken).ConfigureAwait(false);
        if (count >= options.MaxOpenConflictsPerDocument)
        {
            return (null, Refuse(key, $"Document '{key.Id}' has {count} open conflicts, the most the server allows; resolve some, then write it again."));
        }

        if (!_openInScope.TryGetValue(key.Scope, out var inScope))
        {
            inScope = await transaction.CountOpenConflictsAsync(key.Scope, cancellationToken).ConfigureAwait(false);
            _openInScope[key.Scope] = inScope;
        }

        return inScope >= options.MaxOpenConflictsPerScope
            ? (null, Refuse(key, $"Scope '{key.Scope}' has {inScope} open conflicts, the most the server allows; resolve some, then write again."))
            : (null, null);
    }

    private string Refuse(DocumentKey key, string reason)
    {
        (_refused ??= [])[key] = reason;
        return reason;
    }

    /// <summary>Opens a record, or adds the fields to the record <see cref="PrepareAsync"/> found.</summary>
    /// <param name="key">The document.</param>
    /// <param name="joined">The record found by <see cref="PrepareAsync"/>, or <see langword="null"/> to open one.</param>
    /// <param name="fields">The contested fields of the mutation.</param>
    /// <param name="mutationId">The mutation's id.</param>
    /// <param name="takeRevision">Takes the scope's next revision.</param>
    /// <param name="now">The time, for a new record's id and creation time.</param>
    /// <returns>The record as it will be written.</returns>
    public ConflictRecord Add(DocumentKey key, ConflictRecord? joined, IReadOnlyList<ConflictField> fields, long mutationId, Func<long> takeRevision, DateTimeOffset now)
    {
        ConflictRecord record;
        if (joined is null)
        {
            record = new ConflictRecord
            {
                Id = Guid.CreateVersion7(now).ToString(),
                Scope = key.Scope,
                Collection = key.Collection,
                DocumentId = key.Id,
                Revision = takeRevision(),
                Status = ConflictStatus.Open,
                Fields = fields,
                ClientId = clientId,
                MutationId = mutationId,
                CreatedAt = now,
            };
            _openInScope[key.Scope] = _openInScope.GetValueOrDefault(key.Scope) + 1;
            _openedIds.Add(record.Id);
        }
        else
        {
            // A record written by an earlier push takes a new revision, so every device pulls it again; one of this push
            // keeps the revision it took, since nobody has seen it yet.
            record = joined with
            {
                Fields = Join(joined.Fields, fields),
                MutationId = mutationId,
                Revision = _records.ContainsKey(key) ? joined.Revision : takeRevision(),
            };
        }

        _records[key] = record;
        return record;
    }

    /// <summary>Gets a record as this push left it, for a mutation of the same push that resolves it.</summary>
    /// <returns>The record, or <see langword="null"/> when this push did not open or join it.</returns>
    public ConflictRecord? Pending(string conflictId) => _records.Values.FirstOrDefault(r => r.Id == conflictId);

    /// <summary>Takes a record out once a mutation of this push resolved it: it is written resolved, and later conflicts open another.</summary>
    /// <param name="conflictId">The record's id.</param>
    /// <param name="scope">The record's scope.</param>
    public void Resolved(string conflictId, string scope)
    {
        (_resolved ??= new HashSet<string>(StringComparer.Ordinal)).Add(conflictId);
        _refused = null; // a resolution makes room: ask the store again

        // The scope's count, once read, counts this record (read open from the store, or opened by this push); a count
        // read later comes from the store, where the record is already written resolved.
        if (_openInScope.TryGetValue(scope, out var open))
        {
            _openInScope[scope] = open - 1;
        }

        foreach (var (key, record) in _records)
        {
            if (record.Id == conflictId)
            {
                _records.Remove(key);
                return;
            }
        }
    }

    /// <summary>The fields of a record joined by a later edit: the later values replace the older ones of the same field, whose base stays.</summary>
    private static List<ConflictField> Join(IReadOnlyList<ConflictField> older, IReadOnlyList<ConflictField> later)
    {
        var byName = new Dictionary<string, ConflictField>(later.Count, StringComparer.Ordinal);
        foreach (var field in later)
        {
            byName[field.Name] = field;
        }

        var result = new List<ConflictField>(older.Count + later.Count);
        foreach (var field in older)
        {
            if (byName.Remove(field.Name, out var newer))
            {
                // The base is what the device started from before its first contested edit: that is what both sides changed.
                result.Add(newer with { Base = field.Base ?? newer.Base });
            }
            else
            {
                result.Add(field);
            }
        }

        foreach (var field in later)
        {
            if (byName.ContainsKey(field.Name))
            {
                result.Add(field);
            }
        }

        return result;
    }
}
