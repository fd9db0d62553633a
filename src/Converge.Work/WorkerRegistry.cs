using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.Work;

/// <summary>Maps stable worker names to the code that runs them.</summary>
/// <remarks>
/// Work is stored by worker name, so a class can be renamed or moved without stranding its pending work. A name with no
/// worker goes to the callback dispatcher when one is set; with neither, the work fails with a reason that names it.
/// </remarks>
public sealed class WorkerRegistry
{
    private readonly Dictionary<string, Func<IServiceProvider, IWorker>> _factories = new(StringComparer.Ordinal);
    private Func<WorkContext, Task<WorkResult>>? _dispatcher;
    private volatile bool _frozen;

    /// <summary>Initializes a new registry with the built-in workers.</summary>
    public WorkerRegistry()
    {
        _factories[WorkContinuation.CombineWorkerName] = _ => CombineWorker.Instance;
    }

    /// <summary>Gets the registered worker names.</summary>
    public IReadOnlyCollection<string> Names => _factories.Keys;

    /// <summary>Registers a worker class, created through dependency injection for each run.</summary>
    /// <typeparam name="TWorker">The worker class. Its public constructors are kept in trimmed and native AOT apps, so
    /// dependency injection can create it there too.</typeparam>
    /// <param name="name">The stable name; defaults to the class's <see cref="WorkerNameAttribute"/>.</param>
    /// <returns>This registry.</returns>
    public WorkerRegistry Add<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TWorker>(string? name = null)
        where TWorker : class, IWorker
    {
        var key = name ?? WorkRequest.WorkerNameOf(typeof(TWorker));
        return Add(key, sp => ActivatorUtilities.GetServiceOrCreateInstance<TWorker>(sp));
    }

    /// <summary>Registers a worker factory.</summary>
    /// <param name="name">The stable name.</param>
    /// <param name="factory">Creates the worker for a run, from the run's service scope.</param>
    /// <returns>This registry.</returns>
    public WorkerRegistry Add(string name, Func<IServiceProvider, IWorker> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        if (name.StartsWith("converge.", StringComparison.Ordinal))
        {
            throw new ArgumentException("Worker names starting with 'converge.' are reserved.", nameof(name));
        }

        ThrowIfFrozen();
        if (!_factories.TryAdd(name, factory))
        {
            throw new ArgumentException($"A worker is already registered under the name '{name}'.", nameof(name));
        }

        return this;
    }

    /// <summary>Sets one callback for every task name without its own worker, in the Flutter plugin's style.</summary>
    /// <param name="callback">Receives the task (worker) name and input; returns <see langword="true"/> for success and
    /// <see langword="false"/> to retry with backoff. An exception fails the work.</param>
    /// <returns>This registry.</returns>
    public WorkerRegistry ExecuteTask(Func<string, WorkData, Task<bool>> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        ThrowIfFrozen();
        _dispatcher = async ctx => await callback(ctx.WorkerName, ctx.InputData).ConfigureAwait(false) ? WorkResult.Success() : WorkResult.Retry();
        return this;
    }

    /// <summary>Sets one callback for every task name without its own worker, with the full context and result.</summary>
    /// <param name="callback">Runs the work; <see cref="WorkContext.WorkerName"/> is the task name.</param>
    /// <returns>This registry.</returns>
    public WorkerRegistry ExecuteTask(Func<WorkContext, Task<WorkResult>> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        ThrowIfFrozen();
        _dispatcher = callback;
        return this;
    }

    /// <summary>Stops changes once a scheduler runs on the registry, so lookups need no lock.</summary>
    internal void Freeze() => _frozen = true;

    private void ThrowIfFrozen()
    {
        if (_frozen)
        {
            throw new InvalidOperationException("Workers must be registered before the scheduler starts.");
        }
    }

    /// <summary>Gets the names this registry can run, or <see langword="null"/> when a callback dispatcher runs any name.</summary>
    internal IReadOnlyCollection<string>? RunnableNames => _dispatcher is null ? [.. _factories.Keys] : null;

    internal bool CanRun(string name) => _factories.ContainsKey(name) || _dispatcher is not null;

    internal IWorker Create(string name, IServiceProvider services)
    {
        if (_factories.TryGetValue(name, out var factory))
        {
            return factory(services);
        }

        if (_dispatcher is { } dispatcher)
        {
            return new DelegateWorker(dispatcher);
        }

        throw new InvalidOperationException($"No worker is registered under the name '{name}'.");
    }

    private sealed class DelegateWorker(Func<WorkContext, Task<WorkResult>> callback) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context) => callback(context);
    }

    private sealed class CombineWorker : IWorker
    {
        public static readonly CombineWorker Instance = new();

        public Task<WorkResult> DoWorkAsync(WorkContext context) => Task.FromResult(WorkResult.Success(context.InputData));
    }
}
