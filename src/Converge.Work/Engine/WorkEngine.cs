using System.Diagnostics.Metrics;
using Converge.Work.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Work;

/// <summary>The scheduler behind <see cref="WorkManager"/>: makes its parts, starts and stops them, and takes the notices that come from outside the loop.</summary>
/// <remarks>
/// <para>
/// Each part owns its state: the <see cref="WorkLoop"/> the op queue and the batches, the <see cref="Claimer"/> the due
/// read-ahead, <see cref="RunningWorks"/> the runs, <see cref="Leases"/> the agreement between runs and stored rows,
/// <see cref="Watchers"/> the live streams. Ops reach the parts through this class; the parts reach each other only
/// through the narrow calls they were given at construction.
/// </para>
/// <para>
/// Everything that changes the store or the runs happens on the loop, one batch at a time, so no part needs a lock. The
/// device monitor, the store's wake-ups, the timer and the workers only post ops.
/// </para>
/// </remarks>
internal sealed class WorkEngine : IOpQueue, IAsyncDisposable
{
    /// <summary>The largest delay a timer accepts is about 49.7 days; longer waits re-arm on the way.</summary>
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromDays(1);

    private readonly WorkManagerOptions _options;
    private readonly WorkerRegistry _workers;
    private readonly IDeviceStateMonitor _monitor;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly WorkMetrics _metrics;
    private readonly ITimer _timer;
    private readonly SemaphoreSlim _startGate = new(1, 1);
    private Task? _loopTask;
    private bool _started;
    private bool _stopped;
    private bool _stopping;
    private int _disposed;
    private int _wakePending;

    public WorkEngine(
        WorkManagerOptions options,
        WorkerRegistry workers,
        IServiceProvider services,
        IDeviceStateMonitor monitor,
        TimeProvider time,
        ILoggerFactory? loggerFactory,
        IMeterFactory? meterFactory)
    {
        _options = options;
        _workers = workers;
        _monitor = monitor;
        _time = time;
        loggerFactory ??= NullLoggerFactory.Instance;
        _logger = loggerFactory.CreateLogger("Converge.Work");
        Loop = new WorkLoop(this, _logger);
        var context = new WorkStoreContext
        {
            Options = options,
            OnWake = OnStoreWake,
            LoggerFactory = loggerFactory,
            TimeProvider = time,
        };
        Store = WorkStores.Open(context);
        _metrics = new WorkMetrics(meterFactory);
        Runs = new RunningWorks(_metrics);
        Dependents = new Dependents(Store, Runs, Changes);
        Results = new RunResults(Store, Runs, Dependents, Changes, _metrics, _logger, options.DebugMode);
        Claims = new Claimer(Store, workers, Runs, Results, Changes, _metrics, options.MaxConcurrency, monitor.Current);
        Leases = new Leases(Store, Runs, Changes, _logger, options.EnqueueOnly);
        Enqueuer = new Enqueuer(Store, Dependents, Changes, options, _metrics, _logger);
        Runner = new WorkRunner(options, workers, services, time, _metrics, _logger, this);
        _timer = time.CreateTimer(static s => ((WorkEngine)s!).Post(TickOp.Instance), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public IWorkStore Store { get; }

    public BatchChanges Changes { get; } = new();

    public WorkLoop Loop { get; }

    public RunningWorks Runs { get; }

    public Dependents Dependents { get; }

    public RunResults Results { get; }

    public Claimer Claims { get; }

    public Leases Leases { get; }

    public Enqueuer Enqueuer { get; }

    public WorkRunner Runner { get; }

    public Watchers Watchers { get; } = new();

    /// <summary>Gets whether a batch may claim: the scheduler runs work, has started, and is not stopping.</summary>
    public bool CanClaim => !_options.EnqueueOnly && !_stopping && _started;

    /// <summary>Gets whether nothing runs and no due work waits for a slot: what <see cref="WorkManager.WhenIdleAsync"/> waits for.</summary>
    public bool IsIdle => Runs.Count == 0 && (!Claims.Saturated || _stopping);

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Recovers interrupted work and starts the loop, once; later calls return at once.</summary>
    /// <returns>A task that completes when the scheduler runs.</returns>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    /// <exception cref="InvalidOperationException">The manager was stopped.</exception>
    public ValueTask EnsureStartedAsync()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, typeof(WorkManager));
        return Volatile.Read(ref _started) && !Volatile.Read(ref _stopped) ? ValueTask.CompletedTask : StartAsync();
    }

    /// <summary>Stops running work (it is enqueued again, stop reason <see cref="StopReason.Shutdown"/>) and the loop.</summary>
    /// <param name="cancellationToken">Ends the wait for running workers to observe their stop token.</param>
    /// <returns>A task that completes when the scheduler has stopped.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task? loop;
        await _startGate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (!_started || _stopped)
            {
                _stopped = true;
                return;
            }

            _stopped = true;
            loop = _loopTask;
        }
        finally
        {
            _startGate.Release();
        }

        _monitor.Changed -= OnDeviceChanged;
        var shutdown = new ShutdownOp();
        Post(shutdown);
        try
        {
            await shutdown.Completion.Task.ConfigureAwait(false);
            await Runner.WhenAllReturnedAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Workers that ignore their stop token are abandoned; their results will be discarded.
        }
        catch (InvalidOperationException) when (Loop.Crash is not null)
        {
            // The loop crashed; it was logged, and there is nothing left to stop.
        }

        Loop.Close();
        try
        {
            await loop!.ConfigureAwait(false);
        }
        catch (Exception) when (Loop.Crash is not null)
        {
            // Logged where it happened.
        }
    }

    /// <summary>Stops the scheduler and closes the store.</summary>
    /// <returns>A task that completes when everything is released.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await StopAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            Loop.Close();
            await _timer.DisposeAsync().ConfigureAwait(false);
            await Store.DisposeAsync().ConfigureAwait(false);
            _metrics.Dispose();
        }
    }

    public void Post(Op op) => Loop.Post(op);

    /// <summary>Starts the scheduler if it has not started, then submits the op to the loop.</summary>
    /// <param name="op">The op.</param>
    /// <param name="cancellationToken">Ends the wait; the op is still applied.</param>
    /// <typeparam name="T">The op's result.</typeparam>
    /// <returns>The op's result.</returns>
    public async Task<T> SubmitAsync<T>(Op<T> op, CancellationToken cancellationToken)
    {
        await EnsureStartedAsync().ConfigureAwait(false);
        return await Loop.SubmitAsync(op, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Answers a query from the store, outside the loop.</summary>
    /// <param name="query">The query.</param>
    /// <param name="cancellationToken">Stops the query.</param>
    /// <returns>The work items, oldest first.</returns>
    public async Task<IReadOnlyList<WorkInfo>> QueryAsync(WorkQuery query, CancellationToken cancellationToken)
    {
        var rows = await Store.QueryAsync(query, cancellationToken).ConfigureAwait(false);
        var infos = new WorkInfo[rows.Count];
        for (var i = 0; i < infos.Length; i++)
        {
            infos[i] = rows[i].ToInfo();
        }

        return infos;
    }

    /// <summary>The device state changed: claims follow it, and runs whose constraints no longer hold are stopped.</summary>
    /// <param name="state">The new state.</param>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when the stopped work items are written.</returns>
    public async ValueTask OnDeviceAsync(DeviceState state, long now)
    {
        Claims.Device = state;
        Log.DeviceStateChanged(_logger, state);
        foreach (var run in Runs.Snapshot())
        {
            if (run.ConstraintsOverridden)
            {
                continue;
            }

            var reason = run.Constraints.Evaluate(state);
            if (reason != StopReason.NotStopped)
            {
                await Results.StopAsync(run, reason, now).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Another process or node wrote to the store: it may have cancelled work that runs here.</summary>
    /// <param name="now">The batch time.</param>
    /// <returns>A task that completes when memory and store agree.</returns>
    public ValueTask OnWakeAsync(long now)
    {
        Volatile.Write(ref _wakePending, 0);
        return _options.EnqueueOnly ? ValueTask.CompletedTask : Leases.ReconcileAsync(now);
    }

    /// <summary>Stops every run (each is enqueued again) and the claims.</summary>
    /// <param name="now">The batch time.</param>
    /// <returns>How many runs were stopped.</returns>
    public async ValueTask<int> ShutdownAsync(long now)
    {
        _stopping = true;
        var interrupted = 0;
        foreach (var run in Runs.Snapshot())
        {
            await Results.StopAsync(run, StopReason.Shutdown, now).ConfigureAwait(false);
            interrupted++;
        }

        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Log.SchedulerStopped(_logger, interrupted);
        return interrupted;
    }

    /// <summary>After a batch committed: starts what it claimed and tells the watchers of what it changed.</summary>
    /// <param name="claimed">The runs it claimed.</param>
    public void Committed(List<ClaimedRun> claimed)
    {
        foreach (var (row, run, input) in claimed)
        {
            Runner.Start(row, run, input);
        }

        if (Changes.Works.Count > 0)
        {
            Watchers.Notify(Changes.Works);
            Changes.ClearWorks();
        }
    }

    /// <summary>After a batch committed: looks again at once if due work may be waiting for a free slot, else sets the timer.</summary>
    /// <returns>A task that completes when the next look is arranged.</returns>
    public ValueTask AfterBatchAsync()
    {
        if (Claims.Saturated && Runs.Count < _options.MaxConcurrency && !_stopping)
        {
            // Claimed rows failed without running (unknown worker, bad input): more due work may be waiting.
            Post(TickOp.Instance);
            return ValueTask.CompletedTask;
        }

        return ArmTimerAsync();
    }

    /// <summary>After a failed batch: tries again later rather than spin on a store that is failing.</summary>
    public void RetryLater() => _timer.Change(TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);

    private async ValueTask StartAsync()
    {
        await _startGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_stopped)
            {
                throw new InvalidOperationException("This work manager was stopped; create a new one to start again.");
            }

            if (_started)
            {
                return;
            }

            if (!_options.EnqueueOnly)
            {
                var (recovered, pruned) = await Leases.RecoverAsync(Now(), _options.KeepFinishedWorkFor).ConfigureAwait(false);
                _monitor.Changed += OnDeviceChanged;
                Claims.Device = _monitor.Current;
                _workers.Freeze();
                Log.SchedulerStarted(_logger, Store.Path, _options.MaxConcurrency, recovered, pruned);
            }
            else
            {
                Log.EnqueueOnlyOpened(_logger, Store.Path);
            }

            _loopTask = Loop.RunAsync();
            Leases.Active = !_options.EnqueueOnly;
            Volatile.Write(ref _started, true);
            Post(TickOp.Instance);
        }
        finally
        {
            _startGate.Release();
        }
    }

    private async ValueTask ArmTimerAsync()
    {
        if (_options.EnqueueOnly || _stopping)
        {
            return;
        }

        var next = await Claims.NextDueAsync().ConfigureAwait(false);
        if (Leases.NextMaintenanceAt is { } maintenance && (next is null || next > maintenance))
        {
            next = maintenance;
        }

        var delay = next is { } n ? TimeSpan.FromMilliseconds(Math.Max(0, n - Now())) : Timeout.InfiniteTimeSpan;
        if (delay > MaxTimerDelay)
        {
            delay = MaxTimerDelay;
        }

        _timer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    private void OnDeviceChanged(object? sender, DeviceState state) => Post(new DeviceOp(state));

    /// <summary>Another process or node committed to the store.</summary>
    private void OnStoreWake(bool reconcile)
    {
        // One wake in the queue at a time covers any number of notices: the op looks at the store as it is when it runs.
        if (reconcile && !_options.EnqueueOnly && Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            Post(WakeOp.Instance);
        }

        // Watchers here of work changed there see it now.
        Watchers.NotifyAll();
    }
}
