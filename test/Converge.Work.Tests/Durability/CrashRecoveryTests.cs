using Converge.Tests.Shared;

namespace Converge.Work.Tests.Durability;

public class CrashRecoveryTests
{
    private const string Child = "Converge.Work.CrashChild.dll";

    [Fact]
    public async Task Work_killed_mid_run_runs_again_after_restart_with_attempt_count_one_and_nothing_is_lost()
    {
        var directory = Directory.CreateTempSubdirectory("converge-crash-").FullName;
        var db = Path.Combine(directory, "work.db");
        Guid slowId;
        using (var child = CrashChild.Start(Child, "run-slow", db, "100"))
        {
            await child.WaitForLineAsync("ENQUEUED");
            var started = await child.WaitForLineAsync("STARTED");
            var parts = started.Split(' ');
            slowId = Guid.Parse(parts[1]);
            Assert.Equal("0", parts[2]);
            await child.KillAsync();
        }

        var attempts = new List<int>();
        var registry = new WorkerRegistry().Add("slow", _ => new RecordingWorker(attempts));
        await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, registry);
        await manager.StartAsync();
        await manager.WhenIdleAsync();

        Assert.Equal([1], attempts);
        var info = await manager.GetWorkInfoAsync(slowId);
        Assert.Equal(WorkState.Succeeded, info!.State);
        Assert.Equal(100, (await manager.GetWorkInfosAsync(new WorkQuery { Tags = ["other"], States = [WorkState.Enqueued] })).Count);
    }

    [Fact]
    public async Task Ten_thousand_acknowledged_enqueues_survive_a_kill_and_restart()
    {
        var directory = Directory.CreateTempSubdirectory("converge-crash-").FullName;
        var db = Path.Combine(directory, "work.db");
        using (var child = CrashChild.Start(Child, "enqueue", db, "10000"))
        {
            await child.WaitForLineAsync("ENQUEUED 10000");
            await child.KillAsync();
        }

        await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, new WorkerRegistry());
        await manager.StartAsync();

        var infos = await manager.GetWorkInfosAsync(new WorkQuery { Tags = ["bulk"] });
        Assert.Equal(10_000, infos.Count);
        Assert.All(infos, i => Assert.Equal(WorkState.Enqueued, i.State));
        Assert.Equal(10_000, infos.Select(i => i.Id).Distinct().Count());
    }

    private sealed class RecordingWorker(List<int> attempts) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            lock (attempts)
            {
                attempts.Add(context.RunAttemptCount);
            }

            return Task.FromResult(WorkResult.Success());
        }
    }
}
