using System.Net;
using Converge.Work;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Client;

/// <summary>The background sync as a Converge.Work worker: one <see cref="ConvergeClient.SyncAsync"/> round per run.</summary>
/// <remarks>
/// <para>
/// Registered under the stable name <see cref="Name"/> (<c>AddConvergeSync()</c> on the work builder) and scheduled with
/// <see cref="DataSyncWork.ScheduleDataSyncAsync"/> as the unique periodic work <see cref="DataSyncWork.UniqueName"/>.
/// It takes the <see cref="ConvergeClient"/> registered in the container.
/// </para>
/// <para>
/// An unreachable server, a timeout, a dropped connection, or a server error (5xx, 429) returns <see cref="WorkResult.Retry"/>, so the work
/// backs off exponentially; any other refusal is a failure whose output says why. A periodic work comes back at its
/// next period either way. The output of a successful run holds <c>pushed</c>, <c>pulled</c>, <c>conflictsOpened</c>, <c>conflictsResolved</c>,
/// <c>rejected</c> and <c>forbiddenScopes</c> (scopes the server refused; their writes wait in the outbox).
/// </para>
/// </remarks>
[WorkerName(Name)]
public sealed partial class SyncWorker : IWorker
{
    /// <summary>The worker's stable name, under which <c>AddConvergeSync()</c> registers it.</summary>
    /// <remarks>Stored with every run of the work, so it never changes. The periodic work's unique name is <see cref="DataSyncWork.UniqueName"/>.</remarks>
    public const string Name = "Converge.SyncWorker";

    private readonly ConvergeClient _client;
    private readonly ILogger _logger;

    /// <summary>Initializes the worker.</summary>
    /// <param name="client">The client to sync.</param>
    /// <param name="logger">The logger; none when <see langword="null"/>.</param>
    public SyncWorker(ConvergeClient client, ILogger<SyncWorker>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        _client = client;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <inheritdoc/>
    public async Task<WorkResult> DoWorkAsync(WorkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            var report = await _client.SyncAsync(null, context.StopToken).ConfigureAwait(false);
            return WorkResult.Success(WorkData.From(
                ("pushed", report.Pushed),
                ("pulled", report.Pulled),
                ("conflictsOpened", report.ConflictsOpened),
                ("conflictsResolved", report.ConflictsResolved),
                ("rejected", report.Rejected.Count),
                ("forbiddenScopes", report.ForbiddenScopes.ToArray())));
        }
        catch (Exception e) when (ConvergeClient.IsNetworkFailure(e))
        {
            LogRetry(_logger, context.RunAttemptCount, e.Message);
            return WorkResult.Retry();
        }
        catch (ConvergeSyncException e) when (e.StatusCode is null or >= HttpStatusCode.InternalServerError or HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout)
        {
            LogRetry(_logger, context.RunAttemptCount, e.Message);
            return WorkResult.Retry();
        }
        catch (ConvergeSyncException e)
        {
            LogFailed(_logger, e.ErrorCode, e.Message);
            return WorkResult.Failure(WorkData.From(("error", e.ErrorCode ?? "error"), ("message", e.Message)));
        }
    }

    [LoggerMessage(3100, LogLevel.Information, "Background sync could not reach the server (attempt {Attempt}); it will back off and retry: {Reason}")]
    private static partial void LogRetry(ILogger logger, int attempt, string reason);

    [LoggerMessage(3101, LogLevel.Warning, "Background sync was refused by the server ({Code}): {Reason}")]
    private static partial void LogFailed(ILogger logger, string? code, string reason);
}
