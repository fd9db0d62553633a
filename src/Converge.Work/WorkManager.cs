using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Converge.Work.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>The durable work scheduler: stores work in SQLite (or a PostgreSQL database shared by several nodes) and runs it when its time and constraints come.</summary>
/// <remarks>
/// <para>
/// All writes go through one loop that owns the store's write connection. It applies a batch of requests (enqueues,
/// results, cancels) and claims the next due work in a single transaction, and acknowledges each request only after
/// that transaction commits: what <see cref="IWorkManager.EnqueueAsync"/> acknowledged survives a crash.
/// </para>
/// <para>
/// Execution is at-least-once: a work item that was running when the process died is enqueued again at the next start,
/// with its attempt count kept. Only one scheduler may run per SQLite file; other processes open it
/// <see cref="WorkManagerOptions.EnqueueOnly"/>. On PostgreSQL (<c>UsePostgreSql</c> in Converge.Work.PostgreSql) every
/// scheduler is a node, and a node's work is taken over by another once the node stops renewing its lease.
/// </para>
/// </remarks>
public sealed class WorkManager : IWorkManager, IChainEnqueuer, IAsyncDisposable
{
    private readonly WorkManagerOptions _options;
    private readonly WorkEngine _engine;

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
        _engine = new WorkEngine(
            options,
            workers,
            services ?? EmptyServiceProvider.Instance,
            deviceStateMonitor ?? new FixedDeviceStateMonitor(DeviceState.Unconstrained),
            timeProvider ?? TimeProvider.System,
            loggerFactory,
            meterFactory);
    }

    /// <summary>Gets the path of the SQLite store, or the name of the shared database the store is in.</summary>
    public string DatabasePath => _engine.Store.Path;

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
        return _engine.EnsureStartedAsync().AsTask();
    }

    /// <summary>Stops running work (it is enqueued again, stop reason <see cref="StopReason.Shutdown"/>) and the loop.</summary>
    /// <param name="cancellationToken">Ends the wait for running workers to observe their stop token.</param>
    /// <returns>A task that completes when the scheduler has stopped.</returns>
    public Task StopAsync(CancellationToken cancellationToken = default) => _engine.StopAsync(cancellationToken);

    /// <summary>Stops the scheduler and closes the store.</summary>
    /// <returns>A task that completes when everything is released.</returns>
    public ValueTask DisposeAsync() => _engine.DisposeAsync();

    /// <inheritdoc />
    public Task EnqueueAsync(IEnumerable<WorkRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var list = requests.ToList();
        foreach (var r in list)
        {
            ArgumentNullException.ThrowIfNull(r, nameof(requests));
        }

        return list.Count == 0 ? Task.CompletedTask : _engine.SubmitAsync(new EnqueueOp(list), cancellationToken);
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

        return _engine.SubmitAsync(new UniquePeriodicOp(uniqueName, policy, request), cancellationToken);
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
        _engine.SubmitAsync(new ChainOp(continuation), cancellationToken);

    /// <inheritdoc />
    public async Task<WorkInfo?> GetWorkInfoAsync(Guid id, CancellationToken cancellationToken = default) =>
        (await GetWorkInfosAsync(WorkQuery.ForIds(id), cancellationToken).ConfigureAwait(false)).FirstOrDefault();

    /// <inheritdoc />
    public Task<IReadOnlyList<WorkInfo>> GetWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ObjectDisposedException.ThrowIf(_engine.IsDisposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        return _engine.QueryAsync(query, cancellationToken);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<WorkInfo?> WatchWorkInfoAsync(Guid id, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var infos in _engine.Watchers.WatchAsync(WorkQuery.ForIds(id), id, GetWorkInfosAsync, cancellationToken).ConfigureAwait(false))
        {
            yield return infos.Count > 0 ? infos[0] : null;
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        return _engine.Watchers.WatchAsync(query, null, GetWorkInfosAsync, cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> CancelWorkAsync(WorkQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.States.Count > 0)
        {
            throw new ArgumentException("Cancel selects by ids, unique names and tags; it always cancels only unfinished work, so states cannot be given.", nameof(query));
        }

        return _engine.SubmitAsync(new CancelOp(query), cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> PruneWorkAsync(CancellationToken cancellationToken = default) => _engine.SubmitAsync(new PruneOp(), cancellationToken);

    /// <summary>Completes when nothing is running, nothing is waiting to be written, and no work is due now.</summary>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the scheduler is idle.</returns>
    /// <remarks>For tests: with a fake clock, idle means everything that can happen at the current time has happened.</remarks>
    public Task WhenIdleAsync(CancellationToken cancellationToken = default)
    {
        var op = new IdleOp();
        _engine.Post(op);
        return op.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Changes one work in the store inside a batch of the scheduler's loop; watchers of the work are told.</summary>
    internal Task<T> EditAsync<T>(Guid id, Func<IWorkStore, long, ValueTask<T>> edit, CancellationToken cancellationToken = default) =>
        _engine.SubmitAsync(new EditOp<T>(id, edit), cancellationToken);

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
}
