using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Protocol.Tests.Documents;

/// <summary>
/// The server's bookkeeping around <see cref="DocumentMerge.Apply"/>, in memory: one scope whose revision counter takes
/// its next value on every change, and per client the last applied mutation id, so a retried mutation is a duplicate.
/// </summary>
internal sealed class MergeServer(CollectionRules rules)
{
    private readonly Dictionary<string, DocumentState> _documents = new(StringComparer.Ordinal);
    private readonly Dictionary<ulong, long> _lastApplied = [];

    public long Revision { get; private set; }

    public IReadOnlyDictionary<string, DocumentState> Documents => _documents;

    public List<string> Log { get; } = [];

    public MutationStatus Push(ulong client, Mutation mutation)
    {
        if (_lastApplied.TryGetValue(client, out var last) && mutation.Id <= last)
        {
            Log.Add($"{client:x}#{mutation.Id} duplicate");
            return MutationStatus.Duplicate;
        }

        _documents.TryGetValue(mutation.DocumentId, out var current);
        var outcome = DocumentMerge.Apply(current, mutation, client, Revision + 1, rules);
        if (outcome.Changed)
        {
            Revision++;
            _documents[mutation.DocumentId] = outcome.State;
        }

        _lastApplied[client] = mutation.Id;
        Log.Add($"{client:x}#{mutation.Id} {mutation.Kind} {mutation.DocumentId} -> {outcome.Status} => {Doc.Describe(_documents.GetValueOrDefault(mutation.DocumentId))}");
        return outcome.Status;
    }
}
