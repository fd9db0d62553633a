using Converge.Server.Engine;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Hosting;

/// <summary>Opens the store and restores the clock at start; saves the clock at stop.</summary>
internal sealed class ConvergeServerLifetime(SyncEngine engine, ILogger logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => engine.EnsureInitializedAsync(cancellationToken).AsTask();

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await engine.SaveClockAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.ClockSaveFailed(logger, e);
        }
    }
}

/// <summary>Runs the compaction every <see cref="ConvergeServerOptions.CompactionInterval"/>, on the container's <see cref="TimeProvider"/>.</summary>
internal sealed class CompactionService(ConvergeCompactor compactor, ConvergeServerOptions options, TimeProvider time, ILogger logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.CompactionInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await compactor.CompactAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.CompactionFailed(logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}

/// <summary>
/// With a store shared by several nodes (<see cref="Storage.ICommitFeed"/>), streams the other nodes' commits to this
/// node's live clients: for a scope they follow, the changes after the commit's cursor are read as a pull would and sent
/// as one <c>changes</c> message; when notices may have been missed, every client is told to pull.
/// </summary>
internal sealed class LiveFeedService(Storage.ISyncStore store, SyncEngine engine, Live.LiveHub hub, ConvergeServerOptions options, TimeProvider time, ILogger logger) : BackgroundService
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (store is not Storage.ICommitFeed feed)
        {
            return;
        }

        try
        {
            await engine.EnsureInitializedAsync(stoppingToken).ConfigureAwait(false);
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await foreach (var notice in feed.ListenAsync(stoppingToken).ConfigureAwait(false))
                    {
                        await HandleAsync(notice, stoppingToken).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Whatever was announced meanwhile is lost to this node: its clients pull.
                    Log.LiveFeedFailed(logger, e);
                    hub.PokeAll();
                    await Task.Delay(RetryDelay, time, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task HandleAsync(Storage.CommitNotice notice, CancellationToken cancellationToken)
    {
        if (notice.Missed)
        {
            Log.LiveFeedMissed(logger);
            hub.PokeAll();
            return;
        }

        if (notice.Node == engine.NodeId || !hub.IsFollowed(notice.Scope))
        {
            // This node sent its own commit already; nobody here follows the other.
            return;
        }

        var page = await engine.PullAsync(notice.Scope, notice.After, options.MaxPullLimit, cancellationToken).ConfigureAwait(false);
        if (page.HasMore || page.Reset)
        {
            hub.Poke(notice.Scope);
        }
        else
        {
            hub.Publish(notice.After, page);
        }
    }
}
