using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Work.Tests.Hosting;

public class ObservabilityTests
{
    [Fact]
    public async Task Metrics_count_enqueues_starts_and_each_kind_of_result()
    {
        var directory = Directory.CreateTempSubdirectory("converge-metrics-").FullName;
        var totals = new ConcurrentDictionary<string, long>();
        var latencies = new ConcurrentBag<double>();
        using var listener = new MeterListener();
        // Instruments are matched by meter object, so a parallel test's scheduler cannot leak into these counts.
        var meterFactory = new TestMeterFactory();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (meterFactory.Meters.Contains(instrument.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => totals.AddOrUpdate(instrument.Name, value, (_, v) => v + value));
        listener.SetMeasurementEventCallback<double>((_, value, _, _) => latencies.Add(value));
        listener.Start();

        var registry = new WorkerRegistry().ExecuteTask(ctx => Task.FromResult(ctx.WorkerName switch
        {
            "ok" => WorkResult.Success(),
            "bad" => WorkResult.Failure(),
            _ => ctx.RunAttemptCount == 0 ? WorkResult.Retry() : WorkResult.Success(),
        }));
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var manager = new WorkManager(
            new WorkManagerOptions { DatabasePath = Path.Combine(directory, "w.db") }, registry, timeProvider: time, meterFactory: meterFactory);
        await manager.EnqueueAsync([OneTimeWorkRequest.From("ok"), OneTimeWorkRequest.From("bad"), OneTimeWorkRequest.From("flaky")]);
        await manager.WhenIdleAsync();
        time.Advance(TimeSpan.FromSeconds(30));
        await manager.WhenIdleAsync();

        Assert.Equal(3, totals["converge.work.enqueued"]);
        Assert.Equal(4, totals["converge.work.started"]);
        Assert.Equal(2, totals["converge.work.succeeded"]);
        Assert.Equal(1, totals["converge.work.failed"]);
        Assert.Equal(1, totals["converge.work.retried"]);
        Assert.Equal(4, latencies.Count);
        Assert.All(latencies, l => Assert.True(l >= 0));
    }

    [Fact]
    public async Task Debug_mode_logs_every_start_and_finish_at_information()
    {
        var logged = new ConcurrentQueue<(LogLevel Level, int EventId)>();
        using var factory = LoggerFactory.Create(b => b.AddProvider(new ListProvider(logged)).SetMinimumLevel(LogLevel.Trace));
        foreach (var debugMode in new[] { false, true })
        {
            logged.Clear();
            var directory = Directory.CreateTempSubdirectory("converge-log-").FullName;
            await using var manager = new WorkManager(
                new WorkManagerOptions { DatabasePath = Path.Combine(directory, "w.db"), DebugMode = debugMode },
                new WorkerRegistry().ExecuteTask((_, _) => Task.FromResult(true)),
                loggerFactory: factory);
            await manager.EnqueueAsync(OneTimeWorkRequest.From("task"));
            await manager.WhenIdleAsync();

            var expected = debugMode ? LogLevel.Information : LogLevel.Debug;
            Assert.Contains(logged, e => e.EventId is 1010 or 1011 && e.Level == expected);
            Assert.Contains(logged, e => e.EventId is 1012 or 1013 && e.Level == expected);
        }
    }

    private sealed class TestMeterFactory : IMeterFactory
    {
        public ConcurrentBag<Meter> Meters { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options.Name, options.Version, options.Tags, scope: this);
            Meters.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var m in Meters)
            {
                m.Dispose();
            }
        }
    }

    private sealed class ListProvider(ConcurrentQueue<(LogLevel, int)> logged) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(logged);

        public void Dispose()
        {
        }

        private sealed class ListLogger(ConcurrentQueue<(LogLevel, int)> logged) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                logged.Enqueue((logLevel, eventId.Id));
        }
    }
}
