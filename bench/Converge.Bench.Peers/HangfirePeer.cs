using Hangfire;
using Hangfire.Storage.SQLite;
using SQLite;

namespace Converge.Bench.Peers;

/// <summary>
/// Hangfire 1.8.25 on Hangfire.Storage.SQLite 0.4.3: a BackgroundJobServer with W workers on a SQLite
/// file in DIR, jobs enqueued with <see cref="BackgroundJobClient"/> one call at a time.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Journal mode WAL (the storage's <c>JournalMode</c> option, also its default).</item>
/// <item>synchronous=NORMAL: the storage has no option for it, so the connections are made here, the
/// way the storage's own path-based constructor makes them (ReadWrite|Create|NoMutex, DateTime as ticks,
/// 10 s busy timeout), plus the pragma.</item>
/// <item>QueuePollInterval: the storage accepts any positive TimeSpan (it only rejects zero and negative).
/// It has no in-process wake-up on enqueue, so an idle worker finds a new job only at its next poll; this
/// interval therefore bounds Hangfire's latency. Default here is <see cref="DefaultPollMs"/> ms
/// (<c>--poll-ms</c> overrides): on this 2-core machine 1 ms gave the best latency (10 ms: p50 ~5 ms;
/// 0.1 ms: the busy polling starves the workers and p99 gets worse), and it does not change throughput,
/// where the queue is never empty.</item>
/// </list>
/// </remarks>
internal sealed class HangfirePeer : PeerBase
{
    public const double DefaultPollMs = 1;

    private SQLiteStorage? storage;
    private BackgroundJobClient? client;
    private BackgroundJobServer? server;
    private int workers;

    protected override Task SetupAsync(BenchOptions options)
    {
        var path = Path.Combine(options.Dir, "hangfire.db");
        var pollMs = options.PollMs ?? DefaultPollMs;
        workers = options.Workers;

        var storageOptions = new SQLiteStorageOptions
        {
            JournalMode = SQLiteStorageOptions.JournalModes.WAL,
            QueuePollInterval = TimeSpan.FromMilliseconds(pollMs),
        };
        var connections = new SQLiteDbConnectionFactory(() =>
        {
            var connection = new SQLiteConnection(
                path,
                SQLiteOpenFlags.ReadWrite | SQLiteOpenFlags.Create | SQLiteOpenFlags.NoMutex,
                storeDateTimeAsTicks: true)
            {
                BusyTimeout = TimeSpan.FromSeconds(10),
            };
            // Per connection; the storage sets journal_mode itself right after this (from JournalMode).
            connection.Execute("PRAGMA synchronous=NORMAL;");
            return connection;
        });
        storage = new SQLiteStorage(connections, storageOptions);

        GlobalConfiguration.Configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UseStorage(storage);

        client = new BackgroundJobClient(storage);
        Console.Error.WriteLine($"[hangfire] QueuePollInterval={storageOptions.QueuePollInterval.TotalMilliseconds} ms, journal={storageOptions.JournalMode}");
        return Task.CompletedTask;
    }

    protected override ValueTask EnqueueAsync(int index)
    {
        if (index < 0)
        {
            client!.Enqueue(() => HangfireNoopJob.Run());
        }
        else
        {
            client!.Enqueue(() => HangfireNoopJob.RunIndexed(index));
        }

        return ValueTask.CompletedTask;
    }

    protected override Task StartAsync()
    {
        server = new BackgroundJobServer(
            new BackgroundJobServerOptions
            {
                ServerName = "converge-bench-hangfire",
                WorkerCount = workers,
            },
            storage!);
        return Task.CompletedTask;
    }

    protected override Task<long> DoneInStoreAsync(int expected) =>
        Task.FromResult(storage!.GetMonitoringApi().SucceededListCount());

    public override ValueTask DisposeAsync()
    {
        server?.Dispose();
        storage?.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>The no-op job. Public and static so Hangfire can serialize the call and invoke it.</summary>
public static class HangfireNoopJob
{
    /// <summary>Throughput job: just counts.</summary>
    public static void Run() => Probe.JobRan(-1);

    /// <summary>Latency job: records its start against the enqueue timestamp kept under <paramref name="index"/>.</summary>
    public static void RunIndexed(int index) => Probe.JobRan(index);
}
