namespace Converge.Work.Tests.Engine;

public abstract class ConstraintAndTimeoutTests : StoreContract
{
    [Fact]
    public async Task Work_waits_until_every_constraint_holds()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        host.Device.SetNetwork(NetworkState.Disconnected);
        host.Device.SetCharging(false);
        var request = new OneTimeWorkRequestBuilder("sync")
            .SetConstraints(new Constraints(NetworkType.Unmetered, RequiresCharging: true))
            .Build();

        await host.EnqueueAsync(request);
        Assert.Equal(WorkState.Enqueued, (await host.InfoAsync(request)).State);

        host.Device.SetNetwork(NetworkState.Metered);
        await host.RunUntilIdleAsync();
        Assert.Empty(workers.Runs);

        host.Device.SetNetwork(NetworkState.Unmetered);
        await host.RunUntilIdleAsync();
        Assert.Empty(workers.Runs);

        host.Device.SetCharging(true);
        await host.RunUntilIdleAsync();
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
    }

    [Theory]
    [InlineData(NetworkType.Connected, true, false, false, true)]
    [InlineData(NetworkType.Connected, false, false, false, false)]
    [InlineData(NetworkType.Unmetered, true, true, false, false)]
    [InlineData(NetworkType.Unmetered, true, false, true, true)]
    [InlineData(NetworkType.NotRoaming, true, true, false, true)]
    [InlineData(NetworkType.NotRoaming, true, false, true, false)]
    [InlineData(NetworkType.Metered, true, true, false, true)]
    [InlineData(NetworkType.Metered, true, false, false, false)]
    public void Network_types_match_WorkManager(NetworkType type, bool connected, bool metered, bool roaming, bool met)
    {
        var state = DeviceState.Unconstrained with { Network = new NetworkState(connected, metered, roaming) };
        var reason = new Constraints(type).Evaluate(state);
        Assert.Equal(met ? StopReason.NotStopped : StopReason.ConstraintConnectivity, reason);
    }

    [Fact]
    public void Each_device_constraint_reports_its_own_stop_reason()
    {
        var all = new Constraints(NetworkType.NotRequired, true, true, true, true);
        var good = DeviceState.Unconstrained with { IsIdle = true };
        Assert.Equal(StopReason.NotStopped, all.Evaluate(good));
        Assert.Equal(StopReason.ConstraintCharging, all.Evaluate(good with { IsCharging = false }));
        Assert.Equal(StopReason.ConstraintBatteryNotLow, all.Evaluate(good with { IsBatteryLow = true }));
        Assert.Equal(StopReason.ConstraintStorageNotLow, all.Evaluate(good with { IsStorageLow = true }));
        Assert.Equal(StopReason.ConstraintDeviceIdle, all.Evaluate(good with { IsIdle = false }));
    }

    [Fact]
    public async Task Losing_a_constraint_stops_running_work_and_re_enqueues_it_not_fails_it()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        workers.On("sync", Workers.Blocking(started));
        var request = new OneTimeWorkRequestBuilder("sync").SetConstraints(new Constraints(NetworkType.Connected)).Build();
        await host.Manager.EnqueueAsync(request);
        var context = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        host.Device.SetNetwork(NetworkState.Disconnected);
        await host.RunUntilIdleAsync();

        Assert.True(context.StopToken.IsCancellationRequested);
        Assert.Equal(StopReason.ConstraintConnectivity, context.StopReason);
        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(StopReason.ConstraintConnectivity, info.StopReason);
        Assert.Equal(1, info.RunAttemptCount);
    }

    [Fact]
    public async Task Stopped_work_runs_again_when_the_constraint_returns()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        workers.On("sync", ctx => ctx.RunAttemptCount == 0 ? Workers.Blocking(started)(ctx) : Task.FromResult(WorkResult.Success()));
        var request = new OneTimeWorkRequestBuilder("sync").SetConstraints(new Constraints(NetworkType.Connected)).Build();
        await host.Manager.EnqueueAsync(request);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        host.Device.SetNetwork(NetworkState.Disconnected);
        await host.RunUntilIdleAsync();

        host.Device.SetNetwork(NetworkState.Unmetered);
        await host.AdvanceAsync(TimeSpan.FromSeconds(30)); // the stop counts as an attempt, so the backoff applies

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
        Assert.Equal(2, workers.RunCount(request.Id));
    }

    [Fact]
    public async Task Test_driver_meets_all_constraints()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        host.Device.SetNetwork(NetworkState.Disconnected);
        var request = new OneTimeWorkRequestBuilder("sync").SetConstraints(new Constraints(NetworkType.Connected)).Build();
        await host.EnqueueAsync(request);

        await host.Driver.SetAllConstraintsMetAsync(request.Id);
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
    }

    [Fact]
    public async Task Test_driver_keeps_a_running_work_running_when_a_constraint_is_lost()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        var release = new TaskCompletionSource();
        workers.On("sync", async ctx =>
        {
            started.TrySetResult(ctx);
            await release.Task.WaitAsync(ctx.StopToken);
            return WorkResult.Success();
        });
        var request = new OneTimeWorkRequestBuilder("sync").SetConstraints(new Constraints(NetworkType.Connected)).Build();
        await host.Manager.EnqueueAsync(request);
        var context = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await host.Driver.SetAllConstraintsMetAsync(request.Id);
        host.Device.SetNetwork(NetworkState.Disconnected);
        // Writes are applied in order: one that changes nothing returns after the device change has been applied.
        await host.Manager.CancelWorkByIdAsync(Guid.NewGuid());

        Assert.False(context.StopToken.IsCancellationRequested);
        var running = await host.InfoAsync(request);
        Assert.Equal(WorkState.Running, running.State);
        Assert.Equal(StopReason.NotStopped, running.StopReason);

        release.SetResult();
        await host.RunUntilIdleAsync();
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
        Assert.Equal(1, workers.RunCount(request.Id));
    }

    [Fact]
    public async Task Execution_timeout_stops_the_work_and_re_enqueues_it()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync(), o => o.ExecutionTimeout = TimeSpan.FromMinutes(10));
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        var stoppedInfo = new TaskCompletionSource<WorkInfo>();
        workers.On("slow", async ctx =>
        {
            if (ctx.RunAttemptCount > 0)
            {
                stoppedInfo.TrySetResult((await host.Manager.GetWorkInfoAsync(ctx.Id))!);
                return WorkResult.Success();
            }

            return await Workers.Blocking(started)(ctx);
        });
        var request = OneTimeWorkRequest.From("slow");
        await host.Manager.EnqueueAsync(request);
        var context = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Timers of the fake clock fire inside Advance, so nothing can be pending once it returns.
        host.Time.Advance(TimeSpan.FromMinutes(9));
        Assert.False(context.StopToken.IsCancellationRequested);
        Assert.Equal(WorkState.Running, (await host.InfoAsync(request)).State);

        host.Time.Advance(TimeSpan.FromMinutes(1));
        await host.RunUntilIdleAsync();

        Assert.Equal(StopReason.Timeout, context.StopReason);
        // The backoff counts from the last enqueue, 10 minutes ago, so the re-run is due at once.
        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Succeeded, info.State);
        Assert.Equal(2, info.RunAttemptCount);
        Assert.Equal(2, workers.RunCount(request.Id));
    }
}
