using System.Collections.Concurrent;
using Converge.Tests.Shared;
using Converge.Work.Tests.Engine;

namespace Converge.Work.Tests.Cluster;

/// <summary>Several nodes on one PostgreSQL work store: each work runs once, and a dead node's work is taken over after its lease.</summary>
public class WorkClusterTests
{
    private static WorkManagerOptions Node(string connectionString, string schema, int concurrency = 4, TimeSpan? lease = null, bool enqueueOnly = false) =>
        new WorkManagerOptions { MaxConcurrency = concurrency, EnqueueOnly = enqueueOnly }.UsePostgreSql(connectionString, s =>
        {
            s.Schema = schema;
            s.LeaseDuration = lease ?? TimeSpan.FromSeconds(30);
        });

    [Fact]
    public async Task Two_nodes_drain_ten_thousand_works_and_each_runs_exactly_once()
    {
        const int N = 10_000;
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("drain");
        var runs = new ConcurrentDictionary<Guid, int>();
        var perNode = new int[2];
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var total = 0;
        WorkerRegistry Registry(int node) => new WorkerRegistry().Add("count", _ => new CountingWorker(ctx =>
        {
            runs.AddOrUpdate(ctx.Id, 1, (_, n) => n + 1);
            Interlocked.Increment(ref perNode[node]);
            if (Interlocked.Increment(ref total) == N)
            {
                all.TrySetResult();
            }
        }));

        var requests = Enumerable.Range(0, N).Select(_ => (WorkRequest)OneTimeWorkRequest.From("count")).ToList();
        await using (var client = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry()))
        {
            foreach (var chunk in requests.Chunk(1_000))
            {
                await client.EnqueueAsync(chunk);
            }
        }

        await using var a = new WorkManager(Node(cs, schema), Registry(0));
        await using var b = new WorkManager(Node(cs, schema), Registry(1));
        await Task.WhenAll(a.StartAsync(), b.StartAsync());
        await all.Task.WaitAsync(TimeSpan.FromMinutes(3));
        await Task.WhenAll(a.WhenIdleAsync(), b.WhenIdleAsync());

        Assert.Equal(N, runs.Count);
        Assert.All(runs.Values, count => Assert.Equal(1, count));
        Assert.True(perNode[0] > 0 && perNode[1] > 0, $"Both nodes should run work; they ran {perNode[0]} and {perNode[1]}.");
        var succeeded = await a.GetWorkInfosAsync(WorkQuery.ForStates(WorkState.Succeeded));
        Assert.Equal(requests.Select(r => r.Id).Order(), succeeded.Select(i => i.Id).Order());
        Assert.All(succeeded, i => Assert.Equal(1, i.RunAttemptCount));
    }

    [Fact]
    public async Task Work_of_a_killed_node_runs_on_another_node_once_its_lease_runs_out()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("takeover");
        var lease = TimeSpan.FromSeconds(2);
        using var doomed = CrashChild.Start("Converge.Work.CrashChild.dll", "pg-node", cs, schema, ((int)lease.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
        await doomed.WaitForLineAsync("READY");

        var slow = OneTimeWorkRequest.From("slow");
        await using (var client = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry()))
        {
            await client.EnqueueAsync(slow);
        }

        var started = (await doomed.WaitForLineAsync("STARTED ")).Split(' ');
        Assert.Equal(slow.Id.ToString(), started[1]);
        Assert.Equal("0", started[2]);

        // The survivor is up while the doomed node still holds the work: it must leave it alone until the lease runs out.
        var ranHere = new TaskCompletionSource<WorkContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var survivor = new WorkManager(Node(cs, schema, lease: lease), new WorkerRegistry().Add("slow", _ => new CountingWorker(ctx => ranHere.TrySetResult(ctx))));
        await survivor.StartAsync();
        var info = await survivor.GetWorkInfoAsync(slow.Id);
        Assert.Equal(WorkState.Running, info!.State);
        Assert.False(ranHere.Task.IsCompleted);

        await doomed.KillAsync();
        var context = await ranHere.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(slow.Id, context.Id);
        Assert.Equal(1, context.RunAttemptCount); // the killed node's attempt counts
        var done = await WaitForAsync(survivor, slow.Id, WorkState.Succeeded);
        Assert.Equal(2, done.RunAttemptCount);
    }

    [Fact]
    public async Task Cancelling_on_one_node_stops_the_work_running_on_another()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("cancel");
        var started = new TaskCompletionSource<WorkContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stopped = new TaskCompletionSource<StopReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        var registry = new WorkerRegistry().ExecuteTask(async ctx =>
        {
            started.TrySetResult(ctx);
            try
            {
                await Task.Delay(Timeout.Infinite, ctx.StopToken);
            }
            finally
            {
                stopped.TrySetResult(ctx.StopReason);
            }

            return WorkResult.Success();
        });
        await using var runner = new WorkManager(Node(cs, schema), registry);
        await runner.StartAsync();
        await using var other = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry());

        var work = new OneTimeWorkRequestBuilder("block").AddTag("t").Build();
        await other.EnqueueAsync(work);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, await other.CancelAllWorkByTagAsync("t"));

        Assert.Equal(StopReason.CancelledByApp, await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        await runner.WhenIdleAsync();
        var info = await runner.GetWorkInfoAsync(work.Id);
        Assert.Equal(WorkState.Cancelled, info!.State);
    }

    [Fact]
    public async Task Unique_work_enqueued_on_two_nodes_at_once_is_kept_once()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("unique");
        await using var a = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry());
        await using var b = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry());
        await Task.WhenAll(a.StartAsync(), b.StartAsync());

        for (var round = 0; round < 20; round++)
        {
            var name = $"sync-{round}";
            var first = new OneTimeWorkRequestBuilder("x").SetInitialDelay(TimeSpan.FromHours(1)).Build();
            var second = new OneTimeWorkRequestBuilder("x").SetInitialDelay(TimeSpan.FromHours(1)).Build();
            var outcomes = await Task.WhenAll(
                a.EnqueueUniqueWorkAsync(name, ExistingWorkPolicy.Keep, first),
                b.EnqueueUniqueWorkAsync(name, ExistingWorkPolicy.Keep, second));

            var stored = await a.GetWorkInfosAsync(WorkQuery.ForUniqueNames(name));
            Assert.Single(stored);
            Assert.Single(outcomes, o => o == UniqueWorkOutcome.Enqueued);
        }
    }

    [Fact]
    public async Task A_work_that_runs_longer_than_its_lease_stays_with_its_live_node()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("renew");
        var lease = TimeSpan.FromSeconds(1);
        var started = new TaskCompletionSource<WorkContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ranOnOther = new TaskCompletionSource<WorkContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var owner = new WorkManager(Node(cs, schema, lease: lease), new WorkerRegistry().ExecuteTask(async ctx =>
        {
            started.TrySetResult(ctx);
            await release.Task;
            return WorkResult.Success();
        }));
        var work = OneTimeWorkRequest.From("long");
        await owner.EnqueueAsync(work);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await using var other = new WorkManager(Node(cs, schema, lease: lease), new WorkerRegistry().ExecuteTask(ctx =>
        {
            ranOnOther.TrySetResult(ctx);
            return Task.FromResult(WorkResult.Success());
        }));
        await other.StartAsync();

        // The run outlives three leases: without renewal the other node, which looks every third of a lease, takes it.
        var leases = new List<DateTime>();
        var since = System.Diagnostics.Stopwatch.StartNew();
        await using (var connection = new Npgsql.NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            using var read = new Npgsql.NpgsqlCommand($"SELECT lease_until FROM {schema}.work WHERE id = $1", connection) { Parameters = { new() { Value = work.Id } } };
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (since.Elapsed < 3 * lease || leases.Count < 4)
            {
                var until = (DateTime)(await read.ExecuteScalarAsync(deadline.Token))!;
                if (leases.Count == 0 || until != leases[^1])
                {
                    leases.Add(until);
                }

                await Task.Delay(50, deadline.Token);
            }
        }

        Assert.False(ranOnOther.Task.IsCompleted, "The other node ran a work whose node was alive and renewing its lease.");
        Assert.True(leases[^1] > leases[0] + lease, $"The lease was not renewed past its first term: {string.Join(", ", leases)}.");
        release.SetResult();
        var done = await WaitForAsync(owner, work.Id, WorkState.Succeeded);
        Assert.Equal(1, done.RunAttemptCount);
        Assert.False(ranOnOther.Task.IsCompleted);
    }

    [Fact]
    public async Task Failing_enqueues_on_a_node_do_not_roll_back_its_lease_renewals()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("renewfail");
        var lease = TimeSpan.FromSeconds(1);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ranOnOther = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var owner = new WorkManager(Node(cs, schema, lease: lease), new WorkerRegistry().ExecuteTask(async _ =>
        {
            started.TrySetResult();
            await release.Task;
            return WorkResult.Success();
        }));
        var work = OneTimeWorkRequest.From("long");
        await owner.EnqueueAsync(work);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await using var other = new WorkManager(Node(cs, schema, lease: lease), new WorkerRegistry().ExecuteTask(_ =>
        {
            ranOnOther.TrySetResult();
            return Task.FromResult(WorkResult.Success());
        }));
        await other.StartAsync();

        // For three leases the owner's batches are single enqueues that fail (a duplicate id) and roll back.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var refused = 0;
        while (clock.Elapsed < 3 * lease)
        {
            await Assert.ThrowsAsync<InvalidOperationException>(() => owner.EnqueueAsync(work));
            refused++;
        }

        Assert.False(ranOnOther.Task.IsCompleted, $"The other node took the work over while its node renewed the lease ({refused} failed enqueues).");
        release.SetResult();
        Assert.Equal(1, (await WaitForAsync(owner, work.Id, WorkState.Succeeded)).RunAttemptCount);
        Assert.False(ranOnOther.Task.IsCompleted);
    }

    [Fact]
    public async Task A_node_leaves_work_it_has_no_worker_for_to_a_node_that_has_one()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("workers");
        await using var old = new WorkManager(Node(cs, schema), new WorkerRegistry().Add("report", _ => new CountingWorker(_ => { })));
        await old.StartAsync();
        var fresh = OneTimeWorkRequest.From("export");
        var known = OneTimeWorkRequest.From("report");
        await old.EnqueueAsync([fresh, known]);
        await WaitForAsync(old, known.Id, WorkState.Succeeded);
        await old.WhenIdleAsync();
        Assert.Equal(WorkState.Enqueued, (await old.GetWorkInfoAsync(fresh.Id))!.State);

        var ran = new TaskCompletionSource<WorkContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upgraded = new WorkManager(Node(cs, schema), new WorkerRegistry().Add("export", _ => new CountingWorker(ctx => ran.TrySetResult(ctx))));
        await upgraded.StartAsync();
        Assert.Equal(fresh.Id, (await ran.Task.WaitAsync(TimeSpan.FromSeconds(30))).Id);
        Assert.Equal(1, (await WaitForAsync(old, fresh.Id, WorkState.Succeeded)).RunAttemptCount);
    }

    [Fact]
    public async Task Odd_node_names_and_failure_messages_are_stored_as_they_are()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("odd");
        var options = new WorkManagerOptions().UsePostgreSql(cs, s =>
        {
            s.Schema = schema;
            s.NodeName = "o'brien's node";
        });
        await using var node = new WorkManager(options, new WorkerRegistry().ExecuteTask(_ => throw new InvalidOperationException("bad\0byte")));
        var work = OneTimeWorkRequest.From("x");
        await node.EnqueueAsync(work);
        var failed = await WaitForAsync(node, work.Id, WorkState.Failed);
        Assert.Equal(1, failed.RunAttemptCount);
        Assert.Contains("bad\uFFFDbyte", failed.FailureReason, StringComparison.Ordinal);

        // A second process under the same chosen name would take the first one's runs for its own.
        var twin = new WorkManagerOptions().UsePostgreSql(cs, s =>
        {
            s.Schema = schema;
            s.NodeName = "o'brien's node";
        });
        var e = Assert.Throws<InvalidOperationException>(() => new WorkManager(twin, new WorkerRegistry()));
        Assert.Contains("o'brien's node", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Enqueued_work_has_no_finish_time_until_it_finishes()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("finished");
        await using var node = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry());
        var later = new OneTimeWorkRequestBuilder("x").SetInitialDelay(TimeSpan.FromHours(1)).Build();
        await node.EnqueueAsync(later);
        await using var connection = new Npgsql.NpgsqlConnection(cs);
        await connection.OpenAsync();
        using var read = new Npgsql.NpgsqlCommand($"SELECT finished_at FROM {schema}.work WHERE id = $1", connection) { Parameters = { new() { Value = later.Id } } };
        Assert.Equal(DBNull.Value, await read.ExecuteScalarAsync());
        await node.CancelWorkByIdAsync(later.Id);
        Assert.IsType<long>(await read.ExecuteScalarAsync());
    }

    [Fact]
    public void Invalid_store_options_are_refused_with_every_problem_named()
    {
        var options = new WorkManagerOptions();
        var e = Assert.Throws<ArgumentException>(() => options.UsePostgreSql("Host=127.0.0.1", s =>
        {
            s.Schema = "Bad-Name";
            s.LeaseDuration = TimeSpan.FromMilliseconds(10);
            s.NodeName = "a|b";
        }));
        Assert.Contains("Schema", e.Message, StringComparison.Ordinal);
        Assert.Contains("LeaseDuration", e.Message, StringComparison.Ordinal);
        Assert.Contains("NodeName", e.Message, StringComparison.Ordinal);
        Assert.Null(options.StoreProvider);
        Assert.Throws<ArgumentException>(() => options.UsePostgreSql(" "));
    }

    [Fact]
    public async Task A_store_made_by_a_newer_version_is_refused_and_left_alone()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("newer");
        await using (var first = new WorkManager(Node(cs, schema, enqueueOnly: true), new WorkerRegistry()))
        {
            await first.EnqueueAsync(new OneTimeWorkRequestBuilder("x").SetInitialDelay(TimeSpan.FromDays(1)).Build());
        }

        await using (var connection = new Npgsql.NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            using var bump = new Npgsql.NpgsqlCommand($"INSERT INTO {schema}.schema_version (version) VALUES (99)", connection);
            await bump.ExecuteNonQueryAsync();
        }

        var e = Assert.Throws<InvalidOperationException>(() => new WorkManager(Node(cs, schema), new WorkerRegistry()));
        Assert.Contains("99", e.Message, StringComparison.Ordinal);
        await using var connection2 = new Npgsql.NpgsqlConnection(cs);
        await connection2.OpenAsync();
        using var count = new Npgsql.NpgsqlCommand($"SELECT count(*) FROM {schema}.work", connection2);
        Assert.Equal(1L, await count.ExecuteScalarAsync());
    }

    private static async Task<WorkInfo> WaitForAsync(WorkManager manager, Guid id, WorkState state)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var info in manager.WatchWorkInfoAsync(id, cts.Token))
        {
            if (info?.State == state)
            {
                return info;
            }
        }

        throw new InvalidOperationException("unreachable");
    }

    private sealed class CountingWorker(Action<WorkContext> onRun) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            onRun(context);
            return Task.FromResult(WorkResult.Success());
        }
    }
}
