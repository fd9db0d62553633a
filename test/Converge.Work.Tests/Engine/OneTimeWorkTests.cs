using Converge.Work.Testing;

namespace Converge.Work.Tests.Engine;

public abstract class OneTimeWorkTests : StoreContract
{
    [Fact]
    public async Task Work_runs_once_and_succeeds_with_its_output()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("echo", ctx => Task.FromResult(WorkResult.Success(WorkData.From(("got", ctx.InputData.GetString("in")!)))));
        var request = new OneTimeWorkRequestBuilder("echo").SetInputData(WorkData.From(("in", "hello"))).Build();

        await host.EnqueueAsync(request);

        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Succeeded, info.State);
        Assert.Equal("hello", info.OutputData.GetString("got"));
        Assert.Equal(1, info.RunAttemptCount);
        Assert.Equal(1, workers.RunCount(request.Id));
        Assert.Null(info.NextScheduleTime);
    }

    [Fact]
    public async Task Initial_delay_holds_work_until_the_clock_reaches_it()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var request = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromMinutes(10)).Build();

        await host.EnqueueAsync(request);
        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromMinutes(10), info.NextScheduleTime);

        await host.AdvanceAsync(TimeSpan.FromMinutes(9));
        Assert.Equal(WorkState.Enqueued, (await host.InfoAsync(request)).State);

        await host.AdvanceAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
    }

    [Fact]
    public async Task Test_driver_meets_the_initial_delay()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var request = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromDays(1)).Build();
        await host.EnqueueAsync(request);

        await host.Driver.SetInitialDelayMetAsync(request.Id);
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
    }

    [Fact]
    public async Task Retry_backs_off_exponentially_from_the_last_enqueue_and_reports_the_attempt_count()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("flaky", ctx => Task.FromResult(ctx.RunAttemptCount < 2 ? WorkResult.Retry() : WorkResult.Success()));
        var request = new OneTimeWorkRequestBuilder("flaky").SetBackoffCriteria(BackoffPolicy.Exponential, TimeSpan.FromSeconds(30)).Build();

        await host.EnqueueAsync(request);
        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(1, info.RunAttemptCount);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(30), info.NextScheduleTime);

        await host.AdvanceAsync(TimeSpan.FromSeconds(30));
        info = await host.InfoAsync(request);
        Assert.Equal(2, info.RunAttemptCount);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(60), info.NextScheduleTime);

        await host.AdvanceAsync(TimeSpan.FromSeconds(59));
        Assert.Equal(WorkState.Enqueued, (await host.InfoAsync(request)).State);
        await host.AdvanceAsync(TimeSpan.FromSeconds(1));
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(request)).State);
        Assert.Equal([0, 1, 2], workers.Runs.Where(r => r.Id == request.Id).Select(r => r.Attempt));
    }

    [Fact]
    public async Task Linear_backoff_and_the_minimum_backoff_option_apply()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync(), o => o.MinimumBackoffDelay = TimeSpan.FromSeconds(1));
        await using var _ = host;
        workers.On("flaky", WorkResult.Retry());
        var request = new OneTimeWorkRequestBuilder("flaky").SetBackoffCriteria(BackoffPolicy.Linear, TimeSpan.FromSeconds(2)).Build();

        await host.EnqueueAsync(request);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(2), (await host.InfoAsync(request)).NextScheduleTime);
        await host.AdvanceAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(4), (await host.InfoAsync(request)).NextScheduleTime);
        await host.AdvanceAsync(TimeSpan.FromSeconds(4));
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(6), (await host.InfoAsync(request)).NextScheduleTime);
    }

    [Fact]
    public async Task Backoff_below_ten_seconds_is_raised_by_default()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("flaky", WorkResult.Retry());
        var request = new OneTimeWorkRequestBuilder("flaky").SetBackoffCriteria(BackoffPolicy.Linear, TimeSpan.FromSeconds(1)).Build();

        await host.EnqueueAsync(request);

        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromSeconds(10), (await host.InfoAsync(request)).NextScheduleTime);
    }

    [Fact]
    public async Task An_exception_counts_as_failure_and_is_recorded()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("boom", _ => throw new InvalidOperationException("disk on fire"));
        var request = OneTimeWorkRequest.From("boom");

        await host.EnqueueAsync(request);

        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Failed, info.State);
        Assert.Contains("disk on fire", info.FailureReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_worker_fails_with_a_reason_and_the_scheduler_goes_on()
    {
        await using var host = await WorkTestHost.StartAsync(r => r.Add("known", _ => new SucceedingWorker()), await StoreAsync());
        var unknown = OneTimeWorkRequest.From("renamed-away");
        var known = OneTimeWorkRequest.From("known");

        await host.Manager.EnqueueAsync([unknown, known]);
        await host.RunUntilIdleAsync();

        var info = await host.Manager.GetWorkInfoAsync(unknown.Id);
        if (IsShared)
        {
            // Several nodes: another node may have the worker (a rolling deploy), so the work waits for one that does.
            Assert.Equal(WorkState.Enqueued, info!.State);
        }
        else
        {
            Assert.Equal(WorkState.Failed, info!.State);
            Assert.Contains("renamed-away", info.FailureReason, StringComparison.Ordinal);
        }

        Assert.Equal(WorkState.Succeeded, (await host.Manager.GetWorkInfoAsync(known.Id))!.State);
    }

    [Fact]
    public async Task Progress_is_visible_while_running_and_cleared_after()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var reported = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        workers.On("progress", async ctx =>
        {
            await ctx.SetProgressAsync(WorkData.From(("percent", 50)));
            reported.SetResult();
            await release.Task;
            return WorkResult.Success();
        });
        var request = OneTimeWorkRequest.From("progress");
        await host.Manager.EnqueueAsync([request]);

        await reported.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var running = await host.InfoAsync(request);
        Assert.Equal(WorkState.Running, running.State);
        Assert.Equal(50L, running.Progress.GetInt64("percent"));

        release.SetResult();
        await host.RunUntilIdleAsync();
        var done = await host.InfoAsync(request);
        Assert.Equal(WorkState.Succeeded, done.State);
        Assert.True(done.Progress.IsEmpty);
    }

    [Fact]
    public async Task Duplicate_ids_are_refused_and_change_nothing()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var request = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        await host.EnqueueAsync(request);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => host.Manager.EnqueueAsync([OneTimeWorkRequest.From("x"), request]));
        Assert.Contains(request.Id.ToString(), e.Message, StringComparison.Ordinal);
        Assert.Single(await host.Manager.GetWorkInfosAsync(WorkQuery.All));
    }

    [Fact]
    public async Task Concurrency_limit_bounds_how_many_works_run_at_once()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync(), o => o.MaxConcurrency = 2);
        await using var _ = host;
        var running = 0;
        var peak = 0;
        var gate = new TaskCompletionSource();
        var twoStarted = new TaskCompletionSource();
        workers.On("w", async _ =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            if (now == 2)
            {
                twoStarted.TrySetResult();
            }

            await gate.Task;
            Interlocked.Decrement(ref running);
            return WorkResult.Success();
        });

        var requests = Enumerable.Range(0, 6).Select(_ => OneTimeWorkRequest.From("w")).ToArray();
        await host.Manager.EnqueueAsync(requests);
        await twoStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var states = (await host.Manager.GetWorkInfosAsync(WorkQuery.All)).Select(i => i.State).ToList();
        Assert.Equal(2, states.Count(s => s == WorkState.Running));
        gate.SetResult();
        await host.RunUntilIdleAsync();

        Assert.Equal(2, peak);
        Assert.All(await host.Manager.GetWorkInfosAsync(WorkQuery.All), i => Assert.Equal(WorkState.Succeeded, i.State));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    private sealed class SucceedingWorker : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context) => Task.FromResult(WorkResult.Success());
    }
}
