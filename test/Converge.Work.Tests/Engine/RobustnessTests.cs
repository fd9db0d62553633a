namespace Converge.Work.Tests.Engine;

public abstract class RobustnessTests : StoreContract
{
    [Fact]
    public async Task Delays_longer_than_a_timer_can_hold_do_not_stop_the_scheduler()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var far = new OneTimeWorkRequestBuilder("far").SetInitialDelay(TimeSpan.FromDays(60)).Build();
        var near = OneTimeWorkRequest.From("near");

        await host.EnqueueAsync(far);
        await host.EnqueueAsync(near);
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(near)).State);

        for (var day = 0; day < 60; day++)
        {
            await host.AdvanceAsync(TimeSpan.FromDays(1));
        }

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(far)).State);
        Assert.Equal(1, workers.RunCount(far.Id));
    }

    [Fact]
    public async Task Work_that_falls_due_while_a_batch_runs_still_starts()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        // Every reading of the clock moves it on, so works fall due between the claim and the timer being armed.
        host.Time.AutoAdvanceAmount = TimeSpan.FromMilliseconds(1);
        var request = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromMilliseconds(1)).Build();

        await host.Manager.EnqueueAsync(request);

        await host.WaitForStateAsync(request.Id, WorkState.Succeeded);
    }

    [Fact]
    public async Task Work_cancelled_while_others_drain_never_runs()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync(), o => o.MaxConcurrency = 2);
        await using var _ = host;
        var requests = Enumerable.Range(0, 200).Select(i => new OneTimeWorkRequestBuilder("w").AddTag(i < 100 ? "keep" : "drop").Build()).ToArray();
        var cancelled = new TaskCompletionSource<int>();
        workers.On("w", async ctx =>
        {
            if (ctx.Id == requests[0].Id)
            {
                // The scheduler has read ahead past these by now; cancelling must still stop them all.
                cancelled.SetResult(await host.Manager.CancelAllWorkByTagAsync("drop"));
            }

            return WorkResult.Success();
        });

        await host.Manager.EnqueueAsync(requests);
        Assert.Equal(100, await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        await host.RunUntilIdleAsync();

        Assert.All(await host.Manager.GetWorkInfosByTagAsync("keep"), i => Assert.Equal(WorkState.Succeeded, i.State));
        Assert.All(await host.Manager.GetWorkInfosByTagAsync("drop"), i => Assert.Equal(WorkState.Cancelled, i.State));
        Assert.Equal(100, workers.Runs.Count);
    }

    [Fact]
    public async Task Many_due_works_with_unknown_workers_all_fail_and_none_is_left_behind()
    {
        await using var host = await Converge.Work.Testing.WorkTestHost.StartAsync(_ => { }, Compose(await StoreAsync(), o => o.MaxConcurrency = 2));
        var requests = Enumerable.Range(0, 5).Select(_ => OneTimeWorkRequest.From("nobody")).ToArray();

        await host.Manager.EnqueueAsync(requests);
        await host.RunUntilIdleAsync();

        // On a shared store they wait for a node that has the worker instead.
        Assert.All(await host.Manager.GetWorkInfosAsync(WorkQuery.All), i => Assert.Equal(IsShared ? WorkState.Enqueued : WorkState.Failed, i.State));
    }

    [Fact]
    public void Each_build_makes_a_request_with_a_new_id()
    {
        var builder = new OneTimeWorkRequestBuilder("w");
        Assert.NotEqual(builder.Build().Id, builder.Build().Id);
        var fixedId = Guid.NewGuid();
        Assert.Equal(fixedId, builder.SetId(fixedId).Build().Id);
    }

    [Fact]
    public async Task Cancel_refuses_a_query_with_states_instead_of_ignoring_them()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        await Assert.ThrowsAsync<ArgumentException>(() => host.Manager.CancelWorkAsync(WorkQuery.ForStates(WorkState.Enqueued)));
    }

    [Fact]
    public async Task Dispose_completes_pending_idle_waits()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        var started = new TaskCompletionSource<WorkContext>();
        workers.On("long", Workers.Blocking(started));
        await host.Manager.EnqueueAsync(OneTimeWorkRequest.From("long"));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var idle = host.Manager.WhenIdleAsync();
        Assert.False(idle.IsCompleted);

        await host.DisposeAsync();

        await idle.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
