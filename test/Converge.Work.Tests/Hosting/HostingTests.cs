using Converge.Work.Testing;
using Converge.Work.Tests.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Work.Tests.Hosting;

public class HostingTests
{
    [Fact]
    public async Task Hosted_service_runs_di_workers_with_scoped_dependencies_and_the_container_clock()
    {
        var directory = Directory.CreateTempSubdirectory("converge-host-").FullName;
        var time = new FakeTimeProvider(new DateTimeOffset(2031, 5, 1, 0, 0, 0, TimeSpan.Zero));
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton<IDeviceStateMonitor>(new TestDeviceStateMonitor());
        builder.Services.AddScoped<Counter>();
        builder.Services.AddConvergeWork(o => o.DatabasePath = Path.Combine(directory, "work.db")).AddWorker<CountingWorker>();
        builder.Services.AddConvergeWork(); // idempotent
        using var host = builder.Build();
        await host.StartAsync();

        var manager = host.Services.GetRequiredService<IWorkManager>();
        Assert.Same(host.Services.GetRequiredService<WorkManager>(), manager);
        var request = OneTimeWorkRequest.From<CountingWorker>();
        await manager.EnqueueAsync(request);
        await host.Services.GetRequiredService<WorkManager>().WhenIdleAsync();

        var info = await manager.GetWorkInfoAsync(request.Id);
        Assert.Equal(WorkState.Succeeded, info!.State);
        Assert.Equal(1L, info.OutputData.GetInt64("count"));
        Assert.Equal(time.GetUtcNow().ToUnixTimeMilliseconds(), info.OutputData.GetInt64("now"));
        await host.StopAsync();
    }

    [Fact]
    public async Task Invalid_options_fail_the_host_at_start_with_every_problem_named()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddConvergeWork(o =>
        {
            o.MaxConcurrency = 0;
            o.ExecutionTimeout = TimeSpan.Zero;
        });
        using var host = builder.Build();

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(e.Failures, f => f.Contains("DatabasePath", StringComparison.Ordinal));
        Assert.Contains(e.Failures, f => f.Contains("MaxConcurrency", StringComparison.Ordinal));
        Assert.Contains(e.Failures, f => f.Contains("ExecutionTimeout", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_second_scheduler_on_the_same_store_gets_a_clear_error_and_enqueue_only_works()
    {
        await using var host = await WorkTestHost.StartAsync(r => r.ExecuteTask((_, _) => Task.FromResult(true)));

        var e = Assert.Throws<WorkStoreLockedException>(() =>
            new WorkManager(new WorkManagerOptions { DatabasePath = host.DatabasePath }, new WorkerRegistry()));
        Assert.Contains("EnqueueOnly", e.Message, StringComparison.Ordinal);

        await using var client = new WorkManager(new WorkManagerOptions { DatabasePath = host.DatabasePath, EnqueueOnly = true }, new WorkerRegistry());
        await client.StartAsync();
        var request = OneTimeWorkRequest.From("task");
        await client.EnqueueAsync(request);

        // The scheduler learns of the other process's enqueue through the store's wake file, not a timer.
        await host.WaitForStateAsync(request.Id, WorkState.Succeeded);
        Assert.Equal(WorkState.Succeeded, (await client.GetWorkInfoAsync(request.Id))!.State);
    }

    [Fact]
    public async Task Enqueue_before_start_is_refused_with_a_hint()
    {
        var directory = Directory.CreateTempSubdirectory("converge-nostart-").FullName;
        await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = Path.Combine(directory, "w.db") }, new WorkerRegistry());
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => manager.EnqueueAsync(OneTimeWorkRequest.From("x")));
        Assert.Contains("StartAsync", e.Message, StringComparison.Ordinal);
    }

    internal sealed class Counter
    {
        public int Value { get; set; }
    }

    [WorkerName("counting")]
    internal sealed class CountingWorker(Counter counter, TimeProvider time) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            counter.Value++;
            return Task.FromResult(WorkResult.Success(WorkData.From(("count", counter.Value), ("now", time.GetUtcNow().ToUnixTimeMilliseconds()))));
        }
    }
}
