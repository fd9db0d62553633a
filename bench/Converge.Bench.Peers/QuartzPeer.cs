using System.Data.Common;
using Microsoft.Data.Sqlite;
using Quartz;

namespace Converge.Bench.Peers;

/// <summary>
/// Quartz.NET 4.7.3 with the local-transaction ADO.NET job store (JobStoreTX) on SQLite through
/// Microsoft.Data.Sqlite (Quartz's "SQLite-Microsoft" driver), not clustered, System.Text.Json job data.
/// </summary>
/// <remarks>
/// Settings chosen to make Quartz as fast as it fairly can be:
/// <list type="bullet">
/// <item>thread pool max concurrency = W and trigger batch acquisition = W (quartz.scheduler.batchTriggerAcquisitionMaxCount,
/// <c>MaxBatchSize</c> in 4.x), fire-ahead window 0 so nothing fires early;</item>
/// <item>idle wait 1 s, the minimum Quartz accepts; it only matters when the store is empty, because a
/// scheduling call in the same process signals the scheduler thread directly;</item>
/// <item>misfire threshold 10 min, so 10,000 triggers that sat due while being enqueued are fired normally
/// rather than through misfire handling;</item>
/// <item>WAL journal (set on the file before Quartz opens it) and synchronous=NORMAL on every connection
/// Quartz opens (see <see cref="SyncNormalSqliteFactory"/>).</item>
/// </list>
/// </remarks>
internal sealed class QuartzPeer : PeerBase
{
    private const string SchemaResource = "Quartz.Impl.AdoJobStore.Schema.create_sqlite.sql";
    private const string TablePrefix = "QRTZ_";

    private IScheduler? scheduler;
    private int next;

    protected override async Task SetupAsync(BenchOptions options)
    {
        var path = Path.Combine(options.Dir, "quartz.db");
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();

        CreateDatabase(connectionString);

        scheduler = await QuartzSchedulerBuilder.Create(q =>
        {
            q.ConfigureScheduler(s =>
            {
                s.InstanceName = "ConvergeBenchQuartz";
                s.IdleWaitTime = TimeSpan.FromSeconds(1);
                s.MaxBatchSize = options.Workers;
                s.BatchTriggerAcquisitionFireAheadTimeWindow = TimeSpan.Zero;
            });
            q.UseDefaultThreadPool(options.Workers);
            q.UsePersistentStore(store =>
            {
                // Microsoft.Data.Sqlite through a factory that also sets synchronous=NORMAL per connection.
                store.UseSqlite(SyncNormalSqliteFactory.Instance, connectionString);
                store.ConfigureStore(o =>
                {
                    o.TablePrefix = TablePrefix;
                    o.MisfireThreshold = TimeSpan.FromMinutes(10);
                    o.SchemaProvisioning = SchemaProvisioning.Validate;
                });
            });
        }).BuildScheduler();
    }

    protected override async ValueTask EnqueueAsync(int index)
    {
        var id = next++;
        var job = JobBuilder.Create<QuartzNoopJob>()
            .WithIdentity("job-" + id)
            .StoreDurably(false);
        if (index >= 0)
        {
            job = job.UsingJobData(QuartzNoopJob.IndexKey, index);
        }

        var trigger = TriggerBuilder.Create()
            .WithIdentity("trigger-" + id)
            .StartNow()
            .Build();
        await scheduler!.ScheduleJob(job.Build(), trigger);
    }

    protected override Task StartAsync() => scheduler!.Start().AsTask();

    protected override async Task<long> DoneInStoreAsync(int expected)
    {
        // One-shot trigger, non-durable job: Quartz deletes both once the firing is complete.
        var s = scheduler!;
        Console.Error.WriteLine($"[quartz] connections opened with synchronous=NORMAL so far: {SyncNormalSqliteFactory.Opens}");
        var triggers = await s.GetTriggerKeys(GroupMatcher<TriggerKey>.AnyGroup());
        var jobs = await s.GetJobKeys(GroupMatcher<JobKey>.AnyGroup());
        return expected - Math.Max(triggers.Count, jobs.Count);
    }

    public override async ValueTask DisposeAsync()
    {
        if (scheduler is not null)
        {
            await scheduler.Shutdown(waitForJobsToComplete: true);
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// Puts the file in WAL mode and creates the schema before Quartz opens it. The DDL is the script
    /// the Quartz 4.7.3 assembly itself carries for SQLite (what <c>ProvisionSchema()</c> would run), so it
    /// matches this exact version; the older <c>database/tables/tables_sqlite.sql</c> in the repository lacks
    /// the 4.x columns and tables that Quartz's startup schema validation requires.
    /// </summary>
    private static void CreateDatabase(string connectionString)
    {
        string script;
        using (var stream = typeof(IJob).Assembly.GetManifestResourceStream(SchemaResource)
            ?? throw new InvalidOperationException($"Quartz assembly has no '{SchemaResource}' resource"))
        using (var reader = new StreamReader(stream))
        {
            script = reader.ReadToEnd();
        }

        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using (var pragma = connection.CreateCommand())
        {
            // Persistent: stored in the database file, so every later connection is in WAL mode.
            pragma.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = pragma.ExecuteScalar() as string;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"could not put the Quartz database in WAL mode (got '{mode}')");
            }
        }

        using var transaction = connection.BeginTransaction();
        // Statements are separated by a line reading exactly "--;;"; {0} is the table prefix, {1} the
        // prefix without a schema qualifier (the same thing here).
        foreach (var piece in script.Replace("\r\n", "\n", StringComparison.Ordinal).Split("\n--;;\n"))
        {
            var sql = string.Join('\n', piece.Split('\n').Where(l => !l.TrimStart().StartsWith("--", StringComparison.Ordinal))).Trim();
            if (sql.Length == 0)
            {
                continue;
            }

            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = sql.Replace("{0}", TablePrefix, StringComparison.Ordinal).Replace("{1}", TablePrefix, StringComparison.Ordinal);
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }
}

/// <summary>The no-op job: counts itself and, in latency mode, records when it started.</summary>
internal sealed class QuartzNoopJob : IJob
{
    public const string IndexKey = "i";

    public ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        Probe.JobRan(context.MergedJobDataMap.TryGetInt(IndexKey, out var index) ? index : -1);
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Microsoft.Data.Sqlite's factory, except that every connection runs <c>PRAGMA synchronous=NORMAL</c>
/// when it opens. synchronous is a per-connection setting that Microsoft.Data.Sqlite's connection string
/// cannot express, and this build of SQLite defaults WAL connections to FULL (DEFAULT_WAL_SYNCHRONOUS=2).
/// It runs on every Open, pooled or not (a pooled connection keeps the setting, so that is one cheap
/// redundant statement per Quartz transaction, applied equally to both phases).
/// </summary>
internal sealed class SyncNormalSqliteFactory : DbProviderFactory
{
    public static readonly SyncNormalSqliteFactory Instance = new();

    private static long opens;

    public static long Opens => Interlocked.Read(ref opens);

    public override DbConnection CreateConnection() => new SyncNormalSqliteConnection();

    public override DbCommand CreateCommand() => new SqliteCommand();

    public override DbParameter CreateParameter() => new SqliteParameter();

    public override DbConnectionStringBuilder CreateConnectionStringBuilder() => new SqliteConnectionStringBuilder();

    private sealed class SyncNormalSqliteConnection : SqliteConnection
    {
        public override void Open()
        {
            base.Open();
            using var command = CreateCommand();
            command.CommandText = "PRAGMA synchronous=NORMAL;";
            command.ExecuteNonQuery();
            Interlocked.Increment(ref opens);
        }
    }
}
