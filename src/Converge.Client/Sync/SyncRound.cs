using Converge.Protocol.Messages;

namespace Converge.Client.Sync;

/// <summary>The tallies of one sync round.</summary>
internal sealed class SyncRound(IProgress<SyncProgress>? progress)
{
    public int Pushed { get; set; }

    public int Pulled { get; set; }

    public int ConflictsOpened { get; set; }

    public int ConflictsResolved { get; set; }

    public int Restamped { get; set; }

    public List<RejectedMutation> Rejected { get; } = [];

    public List<string> ForbiddenScopes { get; } = [];

    /// <summary>Gets or sets whether a push answer left a document to rebuild from its server state.</summary>
    public bool MarkedStale { get; set; }

    private ConvergeSyncException? FirstForbidden { get; set; }

    public bool IsForbidden(string scope) => ForbiddenScopes.Contains(scope);

    public void Forbid(string scope, ConvergeSyncException error)
    {
        FirstForbidden ??= error;
        if (!IsForbidden(scope))
        {
            ForbiddenScopes.Add(scope);
        }
    }

    /// <summary>The round's error when the server refused scopes: the server's own when it refused one.</summary>
    public ConvergeSyncException? ForbiddenError() => ForbiddenScopes.Count switch
    {
        0 => null,
        1 => FirstForbidden,
        _ => new ConvergeSyncException(
            $"The server refused scopes {string.Join(", ", ForbiddenScopes.Select(s => $"'{s}'"))}; their writes wait in the outbox and the other scopes synced.",
            System.Net.HttpStatusCode.Forbidden,
            ProtocolErrorCodes.ScopeForbidden,
            ForbiddenScopes[0]),
    };

    public void Progress(SyncPhase phase, string? scope) => progress?.Report(new SyncProgress(phase, scope, Pushed, Pulled));

    public SyncReport Report(TimeSpan duration) => new()
    {
        Pushed = Pushed,
        Pulled = Pulled,
        ConflictsOpened = ConflictsOpened,
        ConflictsResolved = ConflictsResolved,
        Rejected = Rejected,
        Restamped = Restamped,
        ForbiddenScopes = [.. ForbiddenScopes],
        Duration = duration,
    };
}
