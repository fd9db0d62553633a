namespace Converge.Work.Tests.Engine;

public abstract class ObservationTests : StoreContract
{
    [Fact]
    public async Task Live_stream_reports_each_state_a_work_passes_through()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var release = new TaskCompletionSource();
        workers.On("w", async _ =>
        {
            await release.Task;
            return WorkResult.Success();
        });
        var request = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromMinutes(1)).Build();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<WorkState?>();
        var subscribed = new TaskCompletionSource();
        var sawEnqueued = new TaskCompletionSource();
        var watching = Task.Run(async () =>
        {
            await foreach (var info in host.Manager.WatchWorkInfoAsync(request.Id, cts.Token))
            {
                seen.Add(info?.State);
                subscribed.TrySetResult();
                if (info?.State == WorkState.Enqueued)
                {
                    sawEnqueued.TrySetResult();
                }

                if (info?.State == WorkState.Running)
                {
                    release.TrySetResult();
                }

                if (info?.State.IsFinished() == true)
                {
                    return;
                }
            }
        });

        await subscribed.Task; // the stream's first item: no such work yet
        await host.Manager.EnqueueAsync(request);
        // A stream reports the latest state, so states that pass quickly may be coalesced; wait before moving on.
        await sawEnqueued.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await host.AdvanceAsync(TimeSpan.FromMinutes(1));
        await watching;

        Assert.Null(seen[0]);
        Assert.Equal(WorkState.Succeeded, seen[^1]);
        Assert.Contains(WorkState.Enqueued, seen);
        Assert.Contains(WorkState.Running, seen);
        Assert.True(seen.IndexOf(WorkState.Enqueued) < seen.IndexOf(WorkState.Running));
    }

    [Fact]
    public async Task Queries_by_tag_name_and_state_combine()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var a = new OneTimeWorkRequestBuilder("w").AddTag("red").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        var b = new OneTimeWorkRequestBuilder("w").AddTag("blue").Build();
        await host.Manager.EnqueueUniqueWorkAsync("named", ExistingWorkPolicy.Keep, a);
        await host.EnqueueAsync(b);

        Assert.Equal(a.Id, Assert.Single(await host.Manager.GetWorkInfosByTagAsync("red")).Id);
        Assert.Equal(2, (await host.Manager.GetWorkInfosByTagAsync("w")).Count);
        Assert.Equal(b.Id, Assert.Single(await host.Manager.GetWorkInfosAsync(new WorkQuery { Tags = ["w"], States = [WorkState.Succeeded] })).Id);
        Assert.Equal("named", (await host.InfoAsync(a)).UniqueName);
        Assert.Empty(await host.Manager.GetWorkInfosAsync(new WorkQuery { UniqueNames = ["named"], Tags = ["blue"] }));
    }

    [Fact]
    public async Task Cancel_by_tag_and_all_changes_only_unfinished_work()
    {
        var (host, _) = await Workers.StartAsync(await StoreAsync());
        await using var __ = host;
        var done = new OneTimeWorkRequestBuilder("w").AddTag("t").Build();
        await host.EnqueueAsync(done);
        var pending1 = new OneTimeWorkRequestBuilder("w").AddTag("t").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        var pending2 = new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        await host.EnqueueAsync(pending1, pending2);

        Assert.Equal(1, await host.Manager.CancelAllWorkByTagAsync("t"));
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(done)).State);
        Assert.Equal(WorkState.Cancelled, (await host.InfoAsync(pending1)).State);
        Assert.Equal(1, await host.Manager.CancelAllWorkAsync());
        Assert.Equal(WorkState.Cancelled, (await host.InfoAsync(pending2)).State);

        Assert.Equal(3, await host.Manager.PruneWorkAsync());
        Assert.Empty(await host.Manager.GetWorkInfosAsync(WorkQuery.All));
    }
}
