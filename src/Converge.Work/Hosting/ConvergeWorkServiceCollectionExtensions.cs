using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using Converge.Work;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Converge.Work with a service collection.</summary>
public static class ConvergeWorkServiceCollectionExtensions
{
    /// <summary>Adds the work scheduler, its hosted service, and the worker registry. Calling it again only adds configuration.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the options; <see cref="WorkManagerOptions.DatabasePath"/> is required.</param>
    /// <returns>A builder to register workers with.</returns>
    /// <remarks>
    /// <see cref="TimeProvider"/>, <see cref="ILoggerFactory"/>, <see cref="IMeterFactory"/> and <see cref="IDeviceStateMonitor"/>
    /// are taken from the container when registered there. Without a device monitor, Linux gets
    /// <see cref="LinuxDeviceStateMonitor"/> and other platforms a state where every constraint holds.
    /// Options are validated when the host starts.
    /// </remarks>
    public static ConvergeWorkBuilder AddConvergeWork(this IServiceCollection services, Action<WorkManagerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var registry = services.FirstOrDefault(d => d.ServiceType == typeof(WorkerRegistry))?.ImplementationInstance as WorkerRegistry;
        if (registry is null)
        {
            registry = new WorkerRegistry();
            services.AddSingleton(registry);
        }

        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.AddOptions<WorkManagerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WorkManagerOptions>, WorkManagerOptionsValidator>());
        services.TryAddSingleton<IDeviceStateMonitor>(sp => DefaultDeviceStateMonitor(sp));
        services.TryAddSingleton(sp => new WorkManager(
            sp.GetRequiredService<IOptions<WorkManagerOptions>>().Value,
            sp.GetRequiredService<WorkerRegistry>(),
            sp,
            sp.GetRequiredService<IDeviceStateMonitor>(),
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>()));
        services.TryAddSingleton<IWorkManager>(sp => sp.GetRequiredService<WorkManager>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, WorkManagerHostedService>());
        return new ConvergeWorkBuilder(services, registry);
    }

    private static IDeviceStateMonitor DefaultDeviceStateMonitor(IServiceProvider sp)
    {
        var options = sp.GetRequiredService<IOptions<WorkManagerOptions>>().Value;
        if (!OperatingSystem.IsLinux())
        {
            return new FixedDeviceStateMonitor(DeviceState.Unconstrained);
        }

        // The storage constraint watches the disk the work lives on; a store in a shared database has none here.
        var directory = string.IsNullOrWhiteSpace(options.DatabasePath)
            ? Environment.CurrentDirectory
            : Path.GetDirectoryName(Path.GetFullPath(options.DatabasePath)) ?? ".";
        return new LinuxDeviceStateMonitor(
            new LinuxDeviceStateMonitorOptions { DataDirectory = directory },
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetService<ILoggerFactory>()?.CreateLogger<LinuxDeviceStateMonitor>() ?? Microsoft.Extensions.Logging.Abstractions.NullLogger<LinuxDeviceStateMonitor>.Instance);
    }

    private sealed class WorkManagerOptionsValidator : IValidateOptions<WorkManagerOptions>
    {
        public ValidateOptionsResult Validate(string? name, WorkManagerOptions options)
        {
            var errors = options.Validate();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => "WorkManagerOptions." + e));
        }
    }

    private sealed class WorkManagerHostedService(WorkManager manager) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => manager.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => manager.StopAsync(cancellationToken);
    }
}

/// <summary>Registers workers for Converge.Work.</summary>
public sealed class ConvergeWorkBuilder
{
    internal ConvergeWorkBuilder(IServiceCollection services, WorkerRegistry registry)
    {
        Services = services;
        Registry = registry;
    }

    /// <summary>Gets the service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Gets the worker registry.</summary>
    public WorkerRegistry Registry { get; }

    /// <summary>Registers a worker class under its stable name; it is created from a fresh service scope for each run.</summary>
    /// <typeparam name="TWorker">The worker class. Its public constructors are kept in trimmed and native AOT apps, so
    /// dependency injection can create it there too.</typeparam>
    /// <param name="name">The stable name; defaults to the class's <see cref="WorkerNameAttribute"/>.</param>
    /// <returns>This builder.</returns>
    public ConvergeWorkBuilder AddWorker<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TWorker>(string? name = null)
        where TWorker : class, IWorker
    {
        Registry.Add<TWorker>(name);
        return this;
    }

    /// <summary>Sets the Flutter-plugin-style callback for task names without their own worker.</summary>
    /// <param name="callback">Receives (task name, input data); <see langword="true"/> is success, <see langword="false"/> retry, an exception failure.</param>
    /// <returns>This builder.</returns>
    public ConvergeWorkBuilder ExecuteTask(Func<string, WorkData, Task<bool>> callback)
    {
        Registry.ExecuteTask(callback);
        return this;
    }

    /// <summary>Sets a callback, with the full context and result, for task names without their own worker.</summary>
    /// <param name="callback">Runs the work.</param>
    /// <returns>This builder.</returns>
    public ConvergeWorkBuilder ExecuteTask(Func<WorkContext, Task<WorkResult>> callback)
    {
        Registry.ExecuteTask(callback);
        return this;
    }
}
