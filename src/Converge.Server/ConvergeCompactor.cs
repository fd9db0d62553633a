using Converge.Server.Engine;
using Converge.Server.Storage;

namespace Converge.Server;

/// <summary>Removes old tombstones and resolved conflicts; the server runs it every <see cref="ConvergeServerOptions.CompactionInterval"/>.</summary>
/// <remarks>
/// Removes the tombstones of documents deleted longer than <see cref="ConvergeServerOptions.TombstoneRetention"/> ago,
/// and conflict records resolved that long ago, and raises each affected scope's min valid cursor to the highest
/// revision removed: a client whose cursor is below it gets a reset on its next pull, since it may have missed a
/// deletion. The items that stay below that cursor take new revisions, so a download from the start is never reset
/// half-way. Resolve it from the container to run a compaction now, for example in tests with a fake clock.
/// </remarks>
public sealed class ConvergeCompactor
{
    private readonly SyncEngine _engine;

    internal ConvergeCompactor(SyncEngine engine) => _engine = engine;

    /// <summary>Runs a compaction now.</summary>
    /// <param name="cancellationToken">Stops the compaction between batches; what was removed stays removed.</param>
    /// <returns>What was removed.</returns>
    public async Task<CompactionResult> CompactAsync(CancellationToken cancellationToken = default)
    {
        var result = await _engine.CompactAsync(cancellationToken).ConfigureAwait(false);
        Completed?.Invoke(result);
        return result;
    }

    /// <summary>Raised after each compaction, for tests that wait for the background one.</summary>
    internal event Action<CompactionResult>? Completed;
}
