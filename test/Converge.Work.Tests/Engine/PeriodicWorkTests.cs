namespace Converge.Work.Tests.Engine;

public abstract class PeriodicWorkTests : StoreContract
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    [Fact]
    public async Task Interval_below_fifteen_minutes_is_raised_and_reported()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var request = new PeriodicWorkRequestBuilder("p", TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(10)).Build();

        await host.Manager.EnqueueAsync([request]);

        var info = await host.InfoAsync(request);
        Assert.Equal(new PeriodicityInfo(TimeSpan.FromMinutes(15), TimeSpan.FromMinutes(5)), info.Periodicity);
        // First run falls in the flex window at the end of the first period.
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromMinutes(10), info.NextScheduleTime);
    }

    [Fact]
    public async Task Minimum_interval_option_lowers_the_floor()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync(), o =>
        {
            o.MinimumPeriodicInterval = TimeSpan.FromSeconds(1);
            o.MinimumPeriodicFlex = TimeSpan.FromSeconds(1);
        });
        await using var __ = host;
        var request = new PeriodicWorkRequestBuilder("p", TimeSpan.FromSeconds(5)).Build();

        await host.Manager.EnqueueAsync([request]);

        Assert.Equal(new PeriodicityInfo(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5)), (await host.InfoAsync(request)).Periodicity);
    }

    [Fact]
    public async Task Success_re_enqueues_at_end_of_run_plus_interval_with_attempts_reset()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var request = new PeriodicWorkRequestBuilder("p", Hour).Build();

        await host.EnqueueAsync(request);
        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(1, info.PeriodCount);
        Assert.Equal(0, info.RunAttemptCount);
        Assert.Equal(host.Time.GetUtcNow() + Hour, info.NextScheduleTime);

        await host.AdvanceAsync(Hour - TimeSpan.FromSeconds(1));
        Assert.Equal(1, workers.RunCount(request.Id));
        await host.AdvanceAsync(TimeSpan.FromSeconds(1));
        Assert.Equal(2, workers.RunCount(request.Id));
        Assert.Equal(2, (await host.InfoAsync(request)).PeriodCount);
    }

    [Fact]
    public async Task Failure_stays_enqueued_for_the_next_period()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("p", WorkResult.Failure(WorkData.From(("why", "offline"))));
        var request = new PeriodicWorkRequestBuilder("p", Hour).Build();

        await host.EnqueueAsync(request);

        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(1, info.PeriodCount);
        Assert.Equal(host.Time.GetUtcNow() + Hour, info.NextScheduleTime);
        await host.AdvanceAsync(Hour);
        Assert.Equal(2, workers.RunCount(request.Id));
    }

    [Fact]
    public async Task Retry_backs_off_within_the_period_then_success_resets_attempts()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("p", ctx => Task.FromResult(ctx.RunAttemptCount == 0 ? WorkResult.Retry() : WorkResult.Success()));
        var request = new PeriodicWorkRequestBuilder("p", Hour).SetBackoffCriteria(BackoffPolicy.Linear, TimeSpan.FromSeconds(20)).Build();

        await host.EnqueueAsync(request);
        var info = await host.InfoAsync(request);
        Assert.Equal((1, 0), (info.RunAttemptCount, info.PeriodCount));
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(20), info.NextScheduleTime);

        await host.AdvanceAsync(TimeSpan.FromSeconds(20));
        info = await host.InfoAsync(request);
        Assert.Equal((0, 1), (info.RunAttemptCount, info.PeriodCount));
        Assert.Equal(host.Time.GetUtcNow() + Hour, info.NextScheduleTime);
    }

    [Fact]
    public async Task Test_driver_meets_the_period_delay()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var request = new PeriodicWorkRequestBuilder("p", Hour).Build();
        await host.EnqueueAsync(request);

        await host.Driver.SetPeriodDelayMetAsync(request.Id);
        await host.RunUntilIdleAsync();

        Assert.Equal(2, workers.RunCount(request.Id));
        await Assert.ThrowsAsync<ArgumentException>(() => host.Driver.SetPeriodDelayMetAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task Only_cancel_ends_periodic_work()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var request = new PeriodicWorkRequestBuilder("p", Hour).Build();
        await host.EnqueueAsync(request);

        Assert.Equal(1, await host.Manager.CancelWorkByIdAsync(request.Id));
        await host.AdvanceAsync(Hour * 3);

        Assert.Equal(WorkState.Cancelled, (await host.InfoAsync(request)).State);
        Assert.Equal(1, workers.RunCount(request.Id));
        Assert.Equal(0, await host.Manager.CancelWorkByIdAsync(request.Id));
    }
}
