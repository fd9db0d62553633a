using Converge.Work;

// Usage:
//   run-slow DB OTHERS   enqueue one "slow" work and OTHERS delayed works, print ENQUEUED, then STARTED <id> <attempt> when the slow work runs; never exits
//   enqueue DB N         enqueue N delayed works one call at a time, print ENQUEUED N once all are acknowledged; never exits
//   pg-node CS SCHEMA LEASE_MS   a node of a PostgreSQL store that runs "slow" works: prints READY, then STARTED <id> <attempt> for each; never exits
var mode = args[0];
var db = args[1];
var count = int.Parse(args[mode == "pg-node" ? 3 : 2], System.Globalization.CultureInfo.InvariantCulture);
var registry = new WorkerRegistry().Add("slow", _ => new SlowWorker());
var options = new WorkManagerOptions { DatabasePath = db };
if (mode == "pg-node")
{
    options.UsePostgreSql(db, s =>
    {
        s.Schema = args[2];
        s.LeaseDuration = TimeSpan.FromMilliseconds(count);
    });
}

await using var manager = new WorkManager(options, registry);
await manager.StartAsync();

if (mode == "pg-node")
{
    Console.WriteLine("READY");
}
else if (mode == "run-slow")
{
    var slow = OneTimeWorkRequest.From("slow");
    await manager.EnqueueAsync(slow);
    for (var i = 0; i < count; i++)
    {
        await manager.EnqueueAsync(new OneTimeWorkRequestBuilder("other").SetInitialDelay(TimeSpan.FromDays(1)).Build());
    }

    Console.WriteLine("ENQUEUED");
}
else
{
    for (var i = 0; i < count; i++)
    {
        await manager.EnqueueAsync(new OneTimeWorkRequestBuilder("other").SetInitialDelay(TimeSpan.FromDays(1)).AddTag("bulk").Build());
    }

    Console.WriteLine($"ENQUEUED {count}");
}

await Task.Delay(Timeout.Infinite);

internal sealed class SlowWorker : IWorker
{
    public async Task<WorkResult> DoWorkAsync(WorkContext context)
    {
        Console.WriteLine($"STARTED {context.Id} {context.RunAttemptCount}");
        await Task.Delay(Timeout.Infinite, context.StopToken);
        return WorkResult.Success();
    }
}
