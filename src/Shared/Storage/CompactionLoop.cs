using Converge.Server.Storage;

namespace Converge.Storage;

/// <summary>What one compaction batch of a scope did: counts, the revision it reached, and whether the scope is done.</summary>
internal readonly record struct CompactionBatch(int Tombstones, int Conflicts, int Moved, long End, bool Done);

/// <summary>The compaction loop the server's stores share (compiled into each store's package): per scope, batches from revision 0 until one says it is done, their counts summed.</summary>
internal static class CompactionLoop
{
    /// <summary>The most client progress records one transaction removes.</summary>
    public const int ClientBatchSize = 1_000;

    /// <summary>Runs the batches of each target scope; each batch is the store's own short transaction.</summary>
    /// <param name="targets">The scopes to compact, each with the highest revision that may be removed or moved.</param>
    /// <param name="batch">Compacts one batch of a scope: (scope, from, highest) to what it did.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <param name="removeClients">Removes one batch of client progress records unused since the cutoff: to how many it removed.</param>
    public static async Task<CompactionResult> RunAsync(
        IEnumerable<(string Scope, long Highest)> targets,
        Func<string, long, long, Task<CompactionBatch>> batch,
        Func<Task<int>> removeClients,
        CancellationToken cancellationToken)
    {
        int tombstones = 0, conflicts = 0, moved = 0, scopes = 0;
        foreach (var (scope, highest) in targets)
        {
            var raised = false;
            long from = 0;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var done = await batch(scope, from, highest).ConfigureAwait(false);
                tombstones += done.Tombstones;
                conflicts += done.Conflicts;
                moved += done.Moved;
                raised |= done.Tombstones + done.Conflicts > 0;
                if (done.Done)
                {
                    break;
                }

                from = done.End;
            }

            if (raised)
            {
                scopes++;
            }
        }

        int clients = 0, removed;
        do
        {
            cancellationToken.ThrowIfCancellationRequested();
            removed = await removeClients().ConfigureAwait(false);
            clients += removed;
        }
        while (removed >= ClientBatchSize);

        return new CompactionResult { TombstonesRemoved = tombstones, ConflictsRemoved = conflicts, ScopesAffected = scopes, ItemsMoved = moved, ClientsRemoved = clients };
    }
}
