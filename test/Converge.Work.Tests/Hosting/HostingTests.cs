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

    [Theory]
    [InlineData(0)]
    [InlineData(10_001)]
    public void Max_concurrency_outside_its_documented_bounds_is_refused_with_them(int maxConcurrency)
    {
        var path = Path.Combine(Path.GetTempPath(), "converge-options-" + Guid.NewGuid().ToString("N") + ".db");
        var options = new WorkManagerOptions { DatabasePath = path, MaxConcurrency = maxConcurrency };

        var e = Assert.Throws<ArgumentException>(() => new WorkManager(options, new WorkerRegistry()));

        Assert.Contains($"MaxConcurrency must be between 1 and 10,000; it is {maxConcurrency}.", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path), "Refused options must not create the store.");
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
    public async Task The_first_enqueue_starts_the_manager_and_a_stopped_manager_cannot_restart()
    {
        var directory = Directory.CreateTempSubdirectory("converge-nostart-").FullName;
        var registry = new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true));
        await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = Path.Combine(directory, "w.db") }, registry);
        var request = OneTimeWorkRequest.From("x");

        await manager.EnqueueAsync(request);
        await manager.WhenIdleAsync();
        Assert.Equal(WorkState.Succeeded, (await manager.GetWorkInfoAsync(request.Id))!.State);
        Assert.Throws<InvalidOperationException>(() => registry.ExecuteTask((_, _) => Task.FromResult(false)));

        await manager.StopAsync();
        await manager.WhenIdleAsync(); // completes: a stopped scheduler is idle
        await Assert.ThrowsAsync<InvalidOperationException>(() => manager.StartAsync());
    }

    [Fact]
    public async Task Work_cancelled_from_another_process_stops_where_it_runs()
    {
        var started = new TaskCompletionSource<WorkContext>();
        await using var host = await WorkTestHost.StartAsync(r => r.Add("long", _ => new BlockingWorker(started)));
        var request = OneTimeWorkRequest.From("long");
        await host.Manager.EnqueueAsync(request);
        var context = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await using var client = new WorkManager(new WorkManagerOptions { DatabasePath = host.DatabasePath, EnqueueOnly = true }, new WorkerRegistry());
        Assert.Equal(1, await client.CancelWorkByIdAsync(request.Id));

        // The client stays open: its commit's wake signal alone must stop the run.
        var stopped = new TaskCompletionSource();
        using (context.StopToken.Register(stopped.SetResult))
        {
            await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(StopReason.CancelledByApp, context.StopReason);
        await host.RunUntilIdleAsync();
        Assert.Equal(WorkState.Cancelled, (await host.Manager.GetWorkInfoAsync(request.Id))!.State);
    }

    [Fact]
    public async Task Finished_work_older_than_the_retention_is_pruned_at_start()
    {
        var directory = Directory.CreateTempSubdirectory("converge-prune-").FullName;
        var db = Path.Combine(directory, "w.db");
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var done = OneTimeWorkRequest.From("x");
        var pending = new OneTimeWorkRequestBuilder("x").SetInitialDelay(TimeSpan.FromDays(10)).Build();
        await using (var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true)), timeProvider: time))
        {
            await manager.EnqueueAsync([done, pending]);
            await manager.WhenIdleAsync();
        }

        time.Advance(TimeSpan.FromDays(1));
        await using (var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, new WorkerRegistry(), timeProvider: time))
        {
            await manager.StartAsync();
            Assert.Null(await manager.GetWorkInfoAsync(done.Id));
            Assert.NotNull(await manager.GetWorkInfoAsync(pending.Id));
        }
    }

    private sealed class BlockingWorker(TaskCompletionSource<WorkContext> started) : IWorker
    {
        public async Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            started.TrySetResult(context);
            await Task.Delay(Timeout.Infinite, context.StopToken);
            return WorkResult.Success();
        }
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
