using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Work;

/// <summary>The durable work scheduler: stores work in SQLite (or a PostgreSQL database shared by several nodes) and runs it when its time and constraints come.</summary>
/// <remarks>
/// <para>
/// All writes go through one loop that owns the store's write connection. It applies a batch of requests (enqueues,
/// results, cancels) and claims the next due works in a single transaction, and acknowledges each request only after
/// that transaction commits: what <see cref="IWorkManager.EnqueueAsync"/> acknowledged survives a crash.
/// </para>
/// <para>
/// Execution is at-least-once: a work that was running when the process died is enqueued again at the next start,
/// with its attempt count kept. Only one scheduler may run per SQLite file; other processes open it
/// <see cref="WorkManagerOptions.EnqueueOnly"/>. On PostgreSQL (<c>UsePostgreSql</c> in Converge.Work.PostgreSql) every
/// scheduler is a node, and a node's work is taken over by another once the node stops renewing its lease.
/// </para>
/// </remarks>
public sealed partial class WorkManager : IWorkManager, IChainEnqueuer, IAsyncDisposable
{
    private readonly WorkManagerOptions _options;
    private readonly WorkerRegistry _workers;
    private readonly IServiceProvider _services;
    private readonly IDeviceStateMonitor _monitor;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly WorkMetrics _metrics;
    private readonly IWorkStore _store;
    private readonly Channel<Op> _ops = Channel.CreateUnbounded<Op>(new UnboundedChannelOptions { SingleReader = false });
    private readonly Dictionary<Guid, RunningWork> _running = [];
    private readonly ConcurrentDictionary<Task, byte> _workerTasks = new();
    private readonly List<TaskCompletionSource> _idleWaiters = [];
    private readonly ConcurrentDictionary<ChangeSubscription, byte> _subscriptions = new();
    private readonly HashSet<Guid> _changed = [];
    private readonly ITimer _timer;
    private DeviceState _device;
    private Task? _loop;
    private long _runSeq;
    private readonly Lock _startLock = new();
    private bool _started;
    private bool _stopped;
    private bool _stopping;
    private bool _claimSaturated;
    private int _disposed;
    private Exception? _crash;
    private bool _needsReconcile;
    private int _wakePending;

    /// <summary>Opens the store and prepares the scheduler; call <see cref="StartAsync"/> to begin running work.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="workers">The registered workers.</param>
    /// <param name="services">The services workers are created from; a fresh scope is made for each run.</param>
    /// <param name="deviceStateMonitor">The source of device state for constraints; by default all constraints hold.</param>
    /// <param name="timeProvider">The clock; by default the system clock.</param>
    /// <param name="loggerFactory">The logger factory.</param>
    /// <param name="meterFactory">The meter factory for metrics.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="WorkStoreLockedException">Another scheduler runs on the store and this one is not enqueue-only.</exception>
    public WorkManager(
        WorkManagerOptions options,
        WorkerRegistry workers,
        IServiceProvider? services = null,
        IDeviceStateMonitor? deviceStateMonitor = null,
        TimeProvider? timeProvider = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(workers);
        options.ThrowIfInvalid();
        _options = options;
        _workers = workers;
        _services = services ?? EmptyServiceProvider.Instance;
        _monitor = deviceStateMonitor ?? new FixedDeviceStateMonitor(DeviceState.Unconstrained);
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Converge.Work");
        var context = new WorkStoreContext(options, OnStoreWake, loggerFactory ?? NullLoggerFactory.Instance, _time);
        _store = options.Store is { } open ? open(context) : SqliteWorkStore.Open(context);
        _metrics = new WorkMetrics(meterFactory);
        _device = _monitor.Current;
        _timer = _time.CreateTimer(static s => ((WorkManager)s!).Post(TickOp.Instance), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Gets the path of the SQLite store, or the name of the shared database the store is in.</summary>
    public string DatabasePath => _store.Path;

    /// <summary>Gets whether this instance only enqueues, queries and cancels.</summary>
    public bool IsEnqueueOnly => _options.EnqueueOnly;

    /// <summary>Recovers interrupted work and starts running work. Enqueue-only instances start their write loop only.</summary>
    /// <param name="cancellationToken">A token to cancel the start.</param>
    /// <returns>A task that completes when the scheduler is running.</returns>
    /// <remarks>
    /// Idempotent, and also done by the first enqueue, query-free call that needs the loop, so services that enqueue
    /// while the host is still starting do not wait for the hosted service. A stopped manager cannot be started again.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The manager was stopped.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        EnsureStarted();
        return Task.CompletedTask;
    }

    private void EnsureStarted()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Volatile.Read(ref _started) && !Volatile.Read(ref _stopped))
        {
            return;
        }

        lock (_startLock)
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
                var (recovered, pruned) = Recover();
                _monitor.Changed += OnDeviceChanged;
                _device = _monitor.Current;
                _workers.Freeze();
                Log.SchedulerStarted(_logger, _store.Path, _options.MaxConcurrency, recovered, pruned);
            }
            else
            {
                Log.EnqueueOnlyOpened(_logger, _store.Path);
            }

            _loop = Task.Factory.StartNew(LoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
            Volatile.Write(ref _started, true);
            Post(TickOp.Instance);
        }
    }

    /// <summary>Stops running work (it is enqueued again, stop reason <see cref="StopReason.Shutdown"/>) and the loop.</summary>
    /// <param name="cancellationToken">Ends the wait for running workers to observe their stop token.</param>
    /// <returns>A task that completes when the scheduler has stopped.</returns>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        Task? loop;
        lock (_startLock)
        {
            if (!_started || _stopped)
            {
                _stopped = true;
                return;
            }

            _stopped = true;
            loop = _loop;
        }

        _monitor.Changed -= OnDeviceChanged;
        var shutdown = new ShutdownOp();
        Post(shutdown);
        try
        {
            await shutdown.Completion.Task.ConfigureAwait(false);
            await Task.WhenAll(_workerTasks.Keys).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Workers that ignore their stop token are abandoned; their results will be discarded.
        }
        catch (InvalidOperationException) when (_crash is not null)
        {
            // The loop crashed; it was logged, and there is nothing left to stop.
        }

        _ops.Writer.TryComplete();
        try
        {
            await loop!.ConfigureAwait(false);
        }
        catch (Exception) when (_crash is not null)
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
            _ops.Writer.TryComplete();
            _timer.Dispose();
            _store.Dispose();
            _metrics.Dispose();
        }
    }

    /// <inheritdoc />
    public Task EnqueueAsync(IEnumerable<WorkRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var list = requests.ToList();
        foreach (var r in list)
        {
            ArgumentNullException.ThrowIfNull(r, nameof(requests));
        }

        return list.Count == 0 ? Task.CompletedTask : Submit(new EnqueueOp(list), cancellationToken);
    }

    /// <inheritdoc />
    public Task<UniqueWorkOutcome> EnqueueUniqueWorkAsync(
        string uniqueName, ExistingWorkPolicy policy, OneTimeWorkRequest request, CancellationToken cancellationToken = default) =>
        BeginUniqueWork(uniqueName, policy, request).EnqueueAsync(cancellationToken);

    /// <inheritdoc />
    public Task<UniqueWorkOutcome> EnqueueUniquePeriodicWorkAsync(
        string uniqueName, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uniqueName);
        ArgumentNullException.ThrowIfNull(request);
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown policy.");
        }

        return Submit(new UniquePeriodicOp(uniqueName, policy, request), cancellationToken);
    }

    /// <inheritdoc />
    public WorkContinuation BeginWith(params OneTimeWorkRequest[] work) => new(this, null, ExistingWorkPolicy.Keep, work, []);

    /// <inheritdoc />
    public WorkContinuation BeginUniqueWork(string uniqueName, ExistingWorkPolicy policy, params OneTimeWorkRequest[] work)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uniqueName);
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown policy.");
        }

        return new(this, uniqueName, policy, work, []);
    }

    Task<UniqueWorkOutcome> IChainEnqueuer.EnqueueChainAsync(WorkContinuation continuation, CancellationToken cancellationToken) =>
        Submit(new ChainOp(continuation), cancellationToken);

    /// <inheritdoc />
    public async Task<WorkInfo?> GetWorkInfoAsync(Guid id, CancellationToken cancellationToken = default) =>
        (await GetWorkInfosAsync(WorkQuery.ForIds(id), cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    /// <inheritdoc />
    public Task<IReadOnlyList<WorkInfo>> GetWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult<IReadOnlyList<WorkInfo>>(_store.Query(query));
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<WorkInfo?> WatchWorkInfoAsync(Guid id, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var infos in WatchAsync(WorkQuery.ForIds(id), id, cancellationToken).ConfigureAwait(false))
        {
            yield return infos.Count > 0 ? infos[0] : null;
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        return WatchAsync(query, null, cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> CancelWorkAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.States.Count > 0)
        {
            throw new ArgumentException("Cancel selects by ids, unique names and tags; it always cancels only unfinished work, so states cannot be given.", nameof(query));
        }

        return Submit(new CancelOp(query), cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> PruneWorkAsync(CancellationToken cancellationToken = default) => Submit(new PruneOp(), cancellationToken);

    /// <summary>Completes when nothing is running, nothing is waiting to be written, and no work is due now.</summary>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the scheduler is idle.</returns>
    /// <remarks>For tests: with a fake clock, idle means everything that can happen at the current time has happened.</remarks>
    public Task WhenIdleAsync(CancellationToken cancellationToken = default)
    {
        var op = new IdleOp();
        Post(op);
        return op.Completion.Task.WaitAsync(cancellationToken);
    }

    internal Task<T> ApplyAsync<T>(Guid id, Func<IWorkStore, long, T> action, CancellationToken cancellationToken = default) =>
        Submit(new DelegateOp<T>(id, action), cancellationToken);

    private async IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchAsync(
        WorkQuery query, Guid? id, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var subscription = new ChangeSubscription(id);
        _subscriptions.TryAdd(subscription, 0);
        try
        {
            string? last = null;
            while (true)
            {
                var infos = await GetWorkInfosAsync(query, cancellationToken).ConfigureAwait(false);
                var fingerprint = Fingerprint(infos);
                if (!string.Equals(fingerprint, last, StringComparison.Ordinal))
                {
                    last = fingerprint;
                    yield return infos;
                }

                await subscription.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _subscriptions.TryRemove(subscription, out _);
        }
    }

    private static string Fingerprint(IReadOnlyList<WorkInfo> infos) => string.Join(
        ';',
        infos.Select(i => $"{i.Id}|{i.State}|{i.RunAttemptCount}|{i.Generation}|{i.PeriodCount}|{i.NextScheduleTime?.ToUnixTimeMilliseconds()}|{i.StopReason}|{i.OutputData.ToJson()}|{i.Progress.ToJson()}"));

    private async Task<T> Submit<T>(Op<T> op, CancellationToken cancellationToken)
    {
        EnsureStarted();
        Post(op);
        if (!cancellationToken.IsCancellationRequested)
        {
            // Commits the op on this thread when no batch is in progress and the store is free right now; never waits,
            // so the caller's token keeps control of the wait below.
            ProcessInline();
        }

        return await op.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>When no batch is in progress, commits one batch on this thread instead of waking the loop.</summary>
    /// <remarks>One batch at most: whatever arrives meanwhile is the loop's, so a caller never drains for others.</remarks>
    private void ProcessInline()
    {
        if (_batchLock.IsHeldByCurrentThread || !_batchLock.TryEnter())
        {
            return;
        }

        try
        {
            if (_crash is null && _disposed == 0 && !_ops.Reader.Completion.IsCompleted)
            {
                ProcessOneBatch(inline: true);
            }
        }
        catch (Exception e)
        {
            // The op's own completion says how it went; this caller is not the one to hear about the loop's failure.
            Crash(e);
        }
        finally
        {
            _batchLock.Exit();
        }
    }

    private Task Submit(Op<bool> op, CancellationToken cancellationToken) => Submit<bool>(op, cancellationToken);

    private void Post(Op op)
    {
        if (!_ops.Writer.TryWrite(op))
        {
            op.Fail(_crash is { } crash
                ? new InvalidOperationException("The work scheduler loop crashed; see the inner exception.", crash)
                : new ObjectDisposedException(nameof(WorkManager), "The work manager has stopped."));
        }
    }

    private long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

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
        foreach (var subscription in _subscriptions.Keys)
        {
            subscription.Notify();
        }
    }

    private (int Recovered, int Pruned) Recover()
    {
        var now = Now();
        _store.Begin();
        try
        {
            var rows = _store.Running();
            foreach (var row in rows)
            {
                row.State = WorkState.Enqueued;
                row.StopReason = StopReason.ProcessDied;
                row.ProgressJson = null;
                // The attempt counts (at-least-once, attempt count kept), but a process death is not the work's
                // failure, so it is due at once rather than after its backoff.
                row.LastEnqueueTime = now;
                row.NextRunAt = now;
                _store.Update(row);
            }

            _store.BatchTime = now;
            var pruned = _store.Prune(now - (long)_options.KeepFinishedWorkFor.TotalMilliseconds).Count;
            _store.Commit();
            return (rows.Count, pruned);
        }
        catch
        {
            _store.Rollback();
            throw;
        }
    }

    private sealed class EmptyServiceProvider : IServiceProvider, IServiceScopeFactory, IServiceScope
    {
        public static readonly EmptyServiceProvider Instance = new();

        public IServiceProvider ServiceProvider => this;

        public object? GetService(Type serviceType) =>
            serviceType == typeof(IServiceScopeFactory) || serviceType == typeof(IServiceProvider) ? this : null;

        public IServiceScope CreateScope() => this;

        public void Dispose()
        {
        }
    }

    private sealed class ChangeSubscription(Guid? id)
    {
        private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

        public Guid? Id { get; } = id;

        public void Notify() => _signal.Writer.TryWrite(true);

        public async Task WaitAsync(CancellationToken cancellationToken) => await _signal.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
    }
}
