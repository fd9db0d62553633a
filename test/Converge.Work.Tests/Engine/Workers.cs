using System.Collections.Concurrent;
using Converge.Work.Testing;

namespace Converge.Work.Tests.Engine;

/// <summary>Workers whose behaviour each test sets by name, with a record of every run.</summary>
internal sealed class Workers
{
    private readonly ConcurrentDictionary<string, Func<WorkContext, Task<WorkResult>>> _behaviours = new();

    public ConcurrentQueue<(string Name, Guid Id, int Attempt, WorkData Input)> Runs { get; } = new();

    public void On(string name, Func<WorkContext, Task<WorkResult>> behaviour) => _behaviours[name] = behaviour;

    public void On(string name, WorkResult result) => On(name, _ => Task.FromResult(result));

    public int RunCount(Guid id) => Runs.Count(r => r.Id == id);

    public static async Task<(WorkTestHost Host, Workers Workers)> StartAsync(Action<WorkManagerOptions>? store, Action<WorkManagerOptions>? configure = null)
    {
        var workers = new Workers();
        var host = await WorkTestHost.StartAsync(
            registry => registry.ExecuteTask(ctx =>
            {
                workers.Runs.Enqueue((ctx.WorkerName, ctx.Id, ctx.RunAttemptCount, ctx.InputData));
                return workers._behaviours.TryGetValue(ctx.WorkerName, out var b) ? b(ctx) : Task.FromResult(WorkResult.Success());
            }),
            StoreContract.Compose(store, configure));
        return (host, workers);
    }

    /// <summary>A behaviour that signals when it starts and then waits for its stop token.</summary>
    public static Func<WorkContext, Task<WorkResult>> Blocking(TaskCompletionSource<WorkContext> started) => async ctx =>
    {
        started.TrySetResult(ctx);
        await Task.Delay(Timeout.Infinite, ctx.StopToken);
        return WorkResult.Success();
    };
}

internal static class HostExtensions
{
    public static async Task<WorkInfo> InfoAsync(this WorkTestHost host, Guid id) =>
        await host.Manager.GetWorkInfoAsync(id) ?? throw new InvalidOperationException($"Work {id} is missing.");

    public static async Task<WorkInfo> InfoAsync(this WorkTestHost host, WorkRequest request) => await host.InfoAsync(request.Id);

    public static async Task EnqueueAsync(this WorkTestHost host, params WorkRequest[] requests)
    {
        await host.Manager.EnqueueAsync(requests);
        await host.RunUntilIdleAsync();
    }

    /// <summary>Waits for the work to reach a state, through the live stream, failing after a generous bound.</summary>
    public static async Task<WorkInfo> WaitForStateAsync(this WorkTestHost host, Guid id, WorkState state)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var info in host.Manager.WatchWorkInfoAsync(id, cts.Token))
        {
            if (info?.State == state)
            {
                return info;
            }
        }

        throw new InvalidOperationException("unreachable");
    }
}
