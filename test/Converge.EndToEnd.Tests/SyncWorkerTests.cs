using Converge.Client;
using Converge.Work;
using Converge.Work.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.EndToEnd.Tests;

/// <summary>The background sync: unique periodic work every 15 minutes on a network, backing off when the server is away, under a name of its own.</summary>
public sealed class SyncWorkerTests
{
    [Fact]
    public async Task DataSyncTask_waits_for_the_network_then_syncs_every_period()
    {
        await using var server = await SyncServer.StartAsync();
        var device = await server.OpenClientAsync("device");
        var other = await server.OpenClientAsync("other");
        await using var services = new ServiceCollection().AddSingleton(device).BuildServiceProvider();
        await using var work = await WorkTestHost.StartAsync(r => r.Add<SyncWorker>(SyncWorker.Name), services: services);
        work.Device.SetNetwork(NetworkState.Disconnected);

        await device.Collection<Todo>("todos").PutAsync("t1", new Todo { Title = "written offline" });
        var outcome = await work.Manager.ScheduleDataSyncAsync();
        Assert.Equal(UniqueWorkOutcome.Enqueued, outcome);
        Assert.Equal(UniqueWorkOutcome.KeptExisting, await work.Manager.ScheduleDataSyncAsync());
        var info = Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName));
        Assert.Equal(TimeSpan.FromMinutes(15), info.Periodicity!.RepeatInterval);
        Assert.Equal(NetworkType.Connected, info.Constraints.RequiredNetworkType);

        // No network: the sync waits, and the write stays in the outbox.
        await work.RunUntilIdleAsync();
        Assert.Equal(1, await device.GetPendingCountAsync());

        // The network comes back: the first period runs and pushes.
        work.Device.SetNetwork(NetworkState.Unmetered);
        await work.RunUntilIdleAsync();
        Assert.Equal(0, await device.GetPendingCountAsync());
        await other.SyncAsync();
        Assert.Equal("written offline", (await other.Collection<Todo>("todos").GetAsync("t1"))!.Title);

        // Another device writes; 15 minutes later the periodic sync pulls it.
        await other.Collection<Todo>("todos").PutAsync("t2", new Todo { Title = "from the other device" });
        await other.SyncAsync();
        await work.AdvanceAsync(TimeSpan.FromMinutes(15));
        Assert.Equal("from the other device", (await device.Collection<Todo>("todos").GetAsync("t2"))!.Title);
        info = Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName));
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(2, info.PeriodCount);
    }

    [Fact]
    public async Task DataSyncTask_backs_off_exponentially_while_the_server_is_away()
    {
        await using var server = await SyncServer.StartAsync();
        var device = await server.OpenClientAsync("device");
        await using var services = new ServiceCollection().AddSingleton(device).BuildServiceProvider();
        await using var work = await WorkTestHost.StartAsync(r => r.Add<SyncWorker>(SyncWorker.Name), services: services);
        await device.Collection<Todo>("todos").PutAsync("t1", new Todo { Title = "waiting" });
        await server.StopAsync();

        await work.Manager.ScheduleDataSyncAsync();
        await work.RunUntilIdleAsync();
        var info = Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName));
        Assert.Equal(WorkState.Enqueued, info.State);
        Assert.Equal(1, info.RunAttemptCount);
        Assert.Equal(work.Time.GetUtcNow() + TimeSpan.FromSeconds(30), info.NextScheduleTime);
        Assert.Equal(SyncStatus.Offline, device.Status);

        await work.AdvanceAsync(TimeSpan.FromSeconds(30));
        info = Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName));
        Assert.Equal(2, info.RunAttemptCount);
        Assert.Equal(work.Time.GetUtcNow() + TimeSpan.FromSeconds(60), info.NextScheduleTime);

        await server.RestartAsync();
        await work.AdvanceAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, await device.GetPendingCountAsync());
        Assert.Equal(SyncStatus.UpToDate, device.Status);
        info = Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName));
        Assert.Equal(0, info.RunAttemptCount);
    }

    [Fact]
    public async Task An_apps_own_dataSyncTask_and_the_background_sync_are_scheduled_side_by_side()
    {
        await using var server = await SyncServer.StartAsync();
        var device = await server.OpenClientAsync("device");
        await using var services = new ServiceCollection().AddSingleton(device).BuildServiceProvider();
        await using var work = await WorkTestHost.StartAsync(r => r.Add<SyncWorker>(SyncWorker.Name).Add("dataSync", _ => new NoopWorker()), services: services);

        // The name of WorkManager's examples, which an app may well use for work of its own.
        var own = new PeriodicWorkRequestBuilder("dataSync", TimeSpan.FromMinutes(15)).Build();
        Assert.Equal(UniqueWorkOutcome.Enqueued, await work.Manager.EnqueueUniquePeriodicWorkAsync("dataSyncTask", ExistingPeriodicWorkPolicy.Keep, own));
        Assert.Equal(UniqueWorkOutcome.Enqueued, await work.Manager.ScheduleDataSyncAsync());

        Assert.NotEqual(SyncWorker.Name, DataSyncWork.UniqueName);
        Assert.Equal(SyncWorker.Name, Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName)).WorkerName);
        Assert.Equal("dataSync", Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync("dataSyncTask")).WorkerName);
    }

    [Fact]
    public async Task Other_work_kept_under_the_sync_name_is_refused_with_what_to_do()
    {
        await using var work = await WorkTestHost.StartAsync(r => r.Add("mine", _ => new NoopWorker()));
        var mine = new PeriodicWorkRequestBuilder("mine", TimeSpan.FromMinutes(15)).Build();
        await work.Manager.EnqueueUniquePeriodicWorkAsync(DataSyncWork.UniqueName, ExistingPeriodicWorkPolicy.Keep, mine);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => work.Manager.ScheduleDataSyncAsync());

        Assert.Contains("runs the worker 'mine'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"CancelUniqueWorkAsync(\"{DataSyncWork.UniqueName}\")", e.Message, StringComparison.Ordinal);
        Assert.Equal(mine.Id, Assert.Single(await work.Manager.GetWorkInfosForUniqueWorkAsync(DataSyncWork.UniqueName)).Id);
    }

    private sealed class NoopWorker : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context) => Task.FromResult(WorkResult.Success());
    }
}
