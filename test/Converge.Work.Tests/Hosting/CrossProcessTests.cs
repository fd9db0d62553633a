using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Converge.Work.Tests.Hosting;

public class CrossProcessTests
{
    private static string NewDb() => Path.Combine(Directory.CreateTempSubdirectory("converge-xproc-").FullName, "w.db");

    [Fact]
    public async Task Back_to_back_enqueues_from_another_process_both_wake_the_scheduler_through_the_file()
    {
        var db = NewDb();
        await using var scheduler = new WorkManager(new WorkManagerOptions { DatabasePath = db }, new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true)));
        await scheduler.StartAsync();
        // The file is what wakes a scheduler the socket cannot reach (another network namespace, other systems).
        await using var client = new WorkManager(new WorkManagerOptions { DatabasePath = db, EnqueueOnly = true, WakeBySocket = false }, new WorkerRegistry());
        var first = OneTimeWorkRequest.From("x");
        var second = OneTimeWorkRequest.From("x");

        await client.EnqueueAsync(first);
        await WaitForAsync(scheduler, first.Id, WorkState.Succeeded);
        await client.EnqueueAsync(second); // within the file's rate-limit window of the first wake

        await WaitForAsync(scheduler, second.Id, WorkState.Succeeded);
    }

    [Fact]
    public async Task A_caller_with_a_token_is_not_blocked_by_another_process_holding_the_store()
    {
        var db = NewDb();
        await using var scheduler = new WorkManager(new WorkManagerOptions { DatabasePath = db }, new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true)));
        await scheduler.StartAsync();
        await scheduler.WhenIdleAsync();
        var request = OneTimeWorkRequest.From("x");
        using (var other = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            other.Open();
            using (var begin = other.CreateCommand())
            {
                begin.CommandText = "BEGIN IMMEDIATE;";
                begin.ExecuteNonQuery();
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            // While the other connection holds the write lock the enqueue cannot commit; the caller's token must end the wait.
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => scheduler.EnqueueAsync(request, cts.Token));

            using var commit = other.CreateCommand();
            commit.CommandText = "COMMIT;";
            commit.ExecuteNonQuery();
        }

        // The op was queued before the caller stopped waiting, so it still commits and runs.
        await WaitForAsync(scheduler, request.Id, WorkState.Succeeded);
    }

    [Fact]
    public async Task A_failure_after_the_commit_is_not_reported_to_a_caller_whose_enqueue_is_stored()
    {
        using var factory = LoggerFactory.Create(b => b.AddProvider(new ThrowingLoggerProvider()).SetMinimumLevel(LogLevel.Trace));
        await using var scheduler = new WorkManager(
            new WorkManagerOptions { DatabasePath = NewDb() }, new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true)), loggerFactory: factory);
        var request = OneTimeWorkRequest.From("x");

        await scheduler.EnqueueAsync(request); // must not throw: the enqueue committed before the logger failed

        Assert.NotNull(await scheduler.GetWorkInfoAsync(request.Id));
    }

    private static async Task WaitForAsync(WorkManager manager, Guid id, WorkState state)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var info in manager.WatchWorkInfoAsync(id, cts.Token))
        {
            if (info?.State == state)
            {
                return;
            }
        }
    }

    /// <summary>A logger that fails when a work starts, after its claim has committed.</summary>
    private sealed class ThrowingLoggerProvider : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 1010)
            {
                throw new InvalidOperationException("The logger broke.");
            }
        }

        public void Dispose()
        {
        }
    }
}
