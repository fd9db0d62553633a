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
