namespace Converge.Work.Tests.Engine;

public abstract class UniqueWorkTests : StoreContract
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private static OneTimeWorkRequest Delayed(string worker = "w") => new OneTimeWorkRequestBuilder(worker).SetInitialDelay(Hour).Build();

    [Fact]
    public async Task Keep_keeps_enqueued_work_and_drops_the_new_one()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var first = Delayed();
        var second = Delayed();

        Assert.Equal(UniqueWorkOutcome.Enqueued, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Keep, first));
        Assert.Equal(UniqueWorkOutcome.KeptExisting, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Keep, second));

        var infos = await host.Manager.GetWorkInfosForUniqueWorkAsync("job");
        Assert.Equal(first.Id, Assert.Single(infos).Id);
        Assert.Null(await host.Manager.GetWorkInfoAsync(second.Id));
    }

    [Fact]
    public async Task Keep_treats_finished_work_as_absent_and_enqueues_the_new_one()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var first = OneTimeWorkRequest.From("w");
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Keep, first);
        await host.RunUntilIdleAsync();

        var second = OneTimeWorkRequest.From("w");
        Assert.Equal(UniqueWorkOutcome.Enqueued, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Keep, second));
        await host.RunUntilIdleAsync();

        Assert.Equal(2, workers.Runs.Count);
        Assert.Equal(second.Id, Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("job")).Id);
    }

    [Fact]
    public async Task Replace_cancels_and_deletes_the_existing_work()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var first = Delayed();
        var second = Delayed();
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Replace, first);

        Assert.Equal(UniqueWorkOutcome.Replaced, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Replace, second));

        Assert.Null(await host.Manager.GetWorkInfoAsync(first.Id));
        Assert.Equal(second.Id, Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("job")).Id);
    }

    [Fact]
    public async Task Replace_stops_running_work()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        workers.On("long", Workers.Blocking(started));
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Replace, OneTimeWorkRequest.From("long"));
        var context = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Replace, Delayed());

        Assert.True(context.StopToken.IsCancellationRequested);
        Assert.Equal(StopReason.CancelledByApp, context.StopReason);
    }

    [Fact]
    public async Task Cancelling_running_work_records_the_stop_reason()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        workers.On("long", Workers.Blocking(started));
        var request = OneTimeWorkRequest.From("long");
        await host.Manager.EnqueueAsync(request);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await host.Manager.CancelWorkByIdAsync(request.Id);

        var info = await host.InfoAsync(request);
        Assert.Equal(WorkState.Cancelled, info.State);
        Assert.Equal(StopReason.CancelledByApp, info.StopReason);
    }

    [Fact]
    public async Task Append_runs_after_the_existing_chain()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var first = Delayed("first");
        var second = OneTimeWorkRequest.From("second");
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Append, first);

        Assert.Equal(UniqueWorkOutcome.Appended, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Append, second));
        await host.RunUntilIdleAsync();
        Assert.Equal(WorkState.Blocked, (await host.InfoAsync(second)).State);

        await host.AdvanceAsync(Hour);
        Assert.Equal(["first", "second"], workers.Runs.Select(r => r.Name));
        Assert.Equal(2, (await host.Manager.GetWorkInfosForUniqueWorkAsync("job")).Count);
    }

    [Fact]
    public async Task Append_to_a_failed_chain_is_born_failed()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("bad", WorkResult.Failure());
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Append, OneTimeWorkRequest.From("bad"));
        await host.RunUntilIdleAsync();

        var appended = OneTimeWorkRequest.From("next");
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.Append, appended);
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Failed, (await host.InfoAsync(appended)).State);
        Assert.DoesNotContain(workers.Runs, r => r.Name == "next");
    }

    [Fact]
    public async Task Append_or_replace_replaces_a_failed_chain()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("bad", WorkResult.Failure());
        var failed = OneTimeWorkRequest.From("bad");
        await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.AppendOrReplace, failed);
        await host.RunUntilIdleAsync();

        var fresh = OneTimeWorkRequest.From("next");
        Assert.Equal(UniqueWorkOutcome.Replaced, await host.Manager.EnqueueUniqueWorkAsync("job", ExistingWorkPolicy.AppendOrReplace, fresh));
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(fresh)).State);
        Assert.Null(await host.Manager.GetWorkInfoAsync(failed.Id));
    }

    [Fact]
    public async Task Periodic_keep_and_cancel_and_reenqueue()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var first = new PeriodicWorkRequestBuilder("p", Hour).Build();
        var second = new PeriodicWorkRequestBuilder("p", Hour).Build();
        var third = new PeriodicWorkRequestBuilder("p", Hour).Build();

        Assert.Equal(UniqueWorkOutcome.Enqueued, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Keep, first));
        Assert.Equal(UniqueWorkOutcome.KeptExisting, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Keep, second));
        Assert.Equal(UniqueWorkOutcome.Replaced, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.CancelAndReenqueue, third));

        Assert.Equal(third.Id, Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("sync")).Id);
    }

    [Fact]
    public async Task Update_keeps_id_schedule_and_counts_and_bumps_the_generation()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var original = new PeriodicWorkRequestBuilder("p", Hour).AddTag("v1").Build();
        await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, original);
        await host.RunUntilIdleAsync();
        var before = await host.InfoAsync(original);

        var updated = new PeriodicWorkRequestBuilder("p", TimeSpan.FromHours(2)).AddTag("v2").SetInputData(WorkData.From(("v", 2))).Build();
        Assert.Equal(UniqueWorkOutcome.Updated, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, updated));

        var after = Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("sync"));
        Assert.Equal(original.Id, after.Id);
        Assert.Equal(before.Generation + 1, after.Generation);
        Assert.Equal(before.PeriodCount, after.PeriodCount);
        Assert.Equal(before.RunAttemptCount, after.RunAttemptCount);
        Assert.Contains("v2", after.Tags);
        Assert.DoesNotContain("v1", after.Tags);
        // Same last-run time, new interval.
        Assert.Equal(before.NextScheduleTime + Hour, after.NextScheduleTime);
        Assert.Single(await host.Manager.GetWorkInfosByTagAsync("v2"));
        Assert.Empty(await host.Manager.GetWorkInfosByTagAsync("v1"));

        await host.AdvanceAsync(TimeSpan.FromHours(2));
        Assert.Equal(2L, workers.Runs.Last().Input.GetInt64("v"));
    }

    [Fact]
    public async Task Update_of_running_work_applies_from_the_next_run()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var started = new TaskCompletionSource<WorkContext>();
        var release = new TaskCompletionSource();
        workers.On("p", async ctx =>
        {
            started.TrySetResult(ctx);
            await release.Task;
            return WorkResult.Success();
        });
        var original = new PeriodicWorkRequestBuilder("p", Hour).SetInputData(WorkData.From(("v", 1))).Build();
        await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, original);
        var running = await started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var updated = new PeriodicWorkRequestBuilder("p", TimeSpan.FromHours(3)).SetInputData(WorkData.From(("v", 2))).Build();
        Assert.Equal(UniqueWorkOutcome.UpdatedForNextRun, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, updated));
        Assert.False(running.StopToken.IsCancellationRequested);
        Assert.Equal(1L, running.InputData.GetInt64("v"));

        release.SetResult();
        await host.RunUntilIdleAsync();
        var info = await host.InfoAsync(original);
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(1, info.Generation);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromHours(3), info.NextScheduleTime);
        await host.AdvanceAsync(TimeSpan.FromHours(3));
        Assert.Equal(2L, workers.Runs.Last().Input.GetInt64("v"));
    }

    [Fact]
    public async Task Update_of_cancelled_work_enqueues_it_afresh()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var original = new PeriodicWorkRequestBuilder("p", Hour).Build();
        await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, original);
        await host.Manager.CancelUniqueWorkAsync("sync");

        var fresh = new PeriodicWorkRequestBuilder("p", Hour).Build();
        Assert.Equal(UniqueWorkOutcome.Enqueued, await host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, fresh));

        var info = Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("sync"));
        Assert.Equal(fresh.Id, info.Id);
        Assert.Equal(0, info.Generation);
    }

    [Fact]
    public async Task Update_is_refused_for_one_time_work_under_the_name_and_changes_nothing()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var oneTime = Delayed();
        await host.Manager.EnqueueUniqueWorkAsync("sync", ExistingWorkPolicy.Keep, oneTime);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            host.Manager.EnqueueUniquePeriodicWorkAsync("sync", ExistingPeriodicWorkPolicy.Update, new PeriodicWorkRequestBuilder("p", Hour).Build()));

        Assert.Contains("one-time", e.Message, StringComparison.Ordinal);
        var info = Assert.Single(await host.Manager.GetWorkInfosForUniqueWorkAsync("sync"));
        Assert.Equal(oneTime.Id, info.Id);
        Assert.Equal(WorkState.Enqueued, info.State);
    }
}
