namespace Converge.Work.Tests.Engine;

public abstract class ChainTests : StoreContract
{
    [Fact]
    public async Task Chain_runs_in_order_and_passes_outputs_on()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("a", WorkResult.Success(WorkData.From(("from", "a"), ("n", 1))));
        workers.On("b", ctx => Task.FromResult(WorkResult.Success(WorkData.From(("saw", ctx.InputData.GetString("from")!)))));
        var a = OneTimeWorkRequest.From("a");
        var b = new OneTimeWorkRequestBuilder("b").SetInputData(WorkData.From(("own", true))).Build();

        await host.Manager.BeginWith(a).Then(b).EnqueueAsync();
        await host.RunUntilIdleAsync();

        Assert.Equal(["a", "b"], workers.Runs.Select(r => r.Name));
        var input = workers.Runs.Single(r => r.Name == "b").Input;
        Assert.True(input.GetBoolean("own"));
        Assert.Equal("a", input.GetString("from"));
        Assert.Equal("a", (await host.InfoAsync(b)).OutputData.GetString("saw"));
    }

    [Fact]
    public async Task Dependents_are_blocked_until_every_prerequisite_succeeds()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var a = new OneTimeWorkRequestBuilder("a").SetInitialDelay(TimeSpan.FromMinutes(1)).Build();
        var b = new OneTimeWorkRequestBuilder("b").SetInitialDelay(TimeSpan.FromMinutes(2)).Build();
        var c = OneTimeWorkRequest.From("c");

        await host.Manager.BeginWith(a, b).Then(c).EnqueueAsync();
        await host.RunUntilIdleAsync();
        Assert.Equal(WorkState.Blocked, (await host.InfoAsync(c)).State);

        await host.AdvanceAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(WorkState.Blocked, (await host.InfoAsync(c)).State);
        await host.AdvanceAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(c)).State);
        Assert.Equal("c", workers.Runs.Last().Name);
    }

    [Fact]
    public async Task A_failure_fails_every_dependent_transitively()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("bad", WorkResult.Failure());
        var a = OneTimeWorkRequest.From("bad");
        var b = OneTimeWorkRequest.From("b");
        var c = OneTimeWorkRequest.From("c");
        var side = OneTimeWorkRequest.From("side");

        await host.Manager.BeginWith(a, side).Then(b).Then(c).EnqueueAsync();
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Failed, (await host.InfoAsync(a)).State);
        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(side)).State);
        Assert.Equal(WorkState.Failed, (await host.InfoAsync(b)).State);
        Assert.Equal(WorkState.Failed, (await host.InfoAsync(c)).State);
        Assert.Contains(a.Id.ToString(), (await host.InfoAsync(b)).FailureReason, StringComparison.Ordinal);
        Assert.DoesNotContain(workers.Runs, r => r.Name is "b" or "c");
    }

    [Fact]
    public async Task A_cancel_cancels_every_unfinished_dependent()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        var a = new OneTimeWorkRequestBuilder("a").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        var b = OneTimeWorkRequest.From("b");
        var c = OneTimeWorkRequest.From("c");

        await host.Manager.BeginWith(a).Then(b).Then(c).EnqueueAsync();
        Assert.Equal(3, await host.Manager.CancelWorkByIdAsync(a.Id));
        await host.AdvanceAsync(TimeSpan.FromHours(2));

        foreach (var r in new[] { a, b, c })
        {
            Assert.Equal(WorkState.Cancelled, (await host.InfoAsync(r)).State);
        }

        Assert.Empty(workers.Runs);
    }

    [Fact]
    public async Task Fan_in_with_the_overwriting_merger_keeps_the_last_prerequisite_value()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("x", WorkResult.Success(WorkData.From(("v", "x"), ("onlyX", 1))));
        workers.On("y", WorkResult.Success(WorkData.From(("v", "y"))));
        var x = OneTimeWorkRequest.From("x");
        var y = OneTimeWorkRequest.From("y");
        var join = OneTimeWorkRequest.From("join");

        await host.Manager.BeginWith(x, y).Then(join).EnqueueAsync();
        await host.RunUntilIdleAsync();

        var input = workers.Runs.Single(r => r.Name == "join").Input;
        Assert.Equal("y", input.GetString("v")); // prerequisites merge in the order they were enqueued
        Assert.Equal(1L, input.GetInt64("onlyX"));
    }

    [Fact]
    public async Task Fan_in_with_the_array_creating_merger_collects_every_value()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("x", WorkResult.Success(WorkData.From(("v", 1))));
        workers.On("y", WorkResult.Success(WorkData.From(("v", 2))));
        var join = new OneTimeWorkRequestBuilder("join").SetInputMerger(InputMerger.ArrayCreating).SetInputData(WorkData.From(("v", 0))).Build();

        await host.Manager.BeginWith(OneTimeWorkRequest.From("x"), OneTimeWorkRequest.From("y")).Then(join).EnqueueAsync();
        await host.RunUntilIdleAsync();

        Assert.Equal([0L, 1L, 2L], workers.Runs.Single(r => r.Name == "join").Input.GetInt64Array("v"));
    }

    [Fact]
    public async Task Combine_joins_continuations_and_passes_their_outputs_as_arrays()
    {
        var (host, workers) = await Workers.StartAsync(await StoreAsync());
        await using var _ = host;
        workers.On("left", WorkResult.Success(WorkData.From(("side", "left"))));
        workers.On("right", WorkResult.Success(WorkData.From(("side", "right"))));
        var last = OneTimeWorkRequest.From("last");

        var left = host.Manager.BeginWith(OneTimeWorkRequest.From("left"));
        var right = host.Manager.BeginWith(OneTimeWorkRequest.From("right"));
        await WorkContinuation.Combine(left, right).Then(last).EnqueueAsync();
        await host.RunUntilIdleAsync();

        Assert.Equal(WorkState.Succeeded, (await host.InfoAsync(last)).State);
        Assert.Equal(["left", "right"], workers.Runs.Single(r => r.Name == "last").Input.GetStringArray("side")!.Order());
    }
}
