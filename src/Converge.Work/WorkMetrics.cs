using System.Diagnostics.Metrics;

namespace Converge.Work;

/// <summary>The scheduler's instruments, on the meter named <see cref="MeterName"/>.</summary>
internal sealed class WorkMetrics : IDisposable
{
    public const string MeterName = "Converge.Work";

    private readonly Meter _meter;

    public WorkMetrics(IMeterFactory? meterFactory)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Enqueued = _meter.CreateCounter<long>("converge.work.enqueued", "{work}", "Work items enqueued.");
        Started = _meter.CreateCounter<long>("converge.work.started", "{work}", "Runs started.");
        Succeeded = _meter.CreateCounter<long>("converge.work.succeeded", "{work}", "Runs that returned success.");
        Failed = _meter.CreateCounter<long>("converge.work.failed", "{work}", "Runs that returned failure or threw.");
        Retried = _meter.CreateCounter<long>("converge.work.retried", "{work}", "Runs that asked to retry.");
        Stopped = _meter.CreateCounter<long>("converge.work.stopped", "{work}", "Runs stopped before finishing.");
        QueueLatency = _meter.CreateHistogram<double>("converge.work.queue_latency", "ms", "Time from eligible to started.");
    }

    public Counter<long> Enqueued { get; }

    public Counter<long> Started { get; }

    public Counter<long> Succeeded { get; }

    public Counter<long> Failed { get; }

    public Counter<long> Retried { get; }

    public Counter<long> Stopped { get; }

    public Histogram<double> QueueLatency { get; }

    public void Dispose() => _meter.Dispose();
}
