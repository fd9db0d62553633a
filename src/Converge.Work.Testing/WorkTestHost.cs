using Microsoft.Extensions.Time.Testing;

namespace Converge.Work.Testing;

/// <summary>A scheduler on a throwaway SQLite file, a fake clock and a hand-set device state: everything a test of work needs.</summary>
/// <remarks>
/// Time moves only when the test advances <see cref="Time"/>; <see cref="AdvanceAsync"/> advances it and waits until
/// everything due by then has run, so tests never sleep.
/// </remarks>
public sealed class WorkTestHost : IAsyncDisposable
{
    private readonly string _directory;

    private WorkTestHost(string directory, WorkManager manager, FakeTimeProvider time, TestDeviceStateMonitor device)
    {
        _directory = directory;
        Manager = manager;
        Time = time;
        Device = device;
        Driver = new WorkTestDriver(manager);
    }

    /// <summary>Gets the scheduler.</summary>
    public WorkManager Manager { get; }

    /// <summary>Gets the fake clock.</summary>
    public FakeTimeProvider Time { get; }

    /// <summary>Gets the device state to change.</summary>
    public TestDeviceStateMonitor Device { get; }

    /// <summary>Gets the test driver.</summary>
    public WorkTestDriver Driver { get; }

    /// <summary>Gets the path of the SQLite store.</summary>
    public string DatabasePath => Manager.DatabasePath;

    /// <summary>Starts a scheduler with workers and options of the test's choosing.</summary>
    /// <param name="configureWorkers">Registers the workers.</param>
    /// <param name="configureOptions">Adjusts the options; the database path is set already.</param>
    /// <param name="services">Services for workers, if they need any.</param>
    /// <param name="start">The time the fake clock starts at; by default 2030-01-01 UTC.</param>
    /// <returns>The started host.</returns>
    public static async Task<WorkTestHost> StartAsync(
        Action<WorkerRegistry> configureWorkers,
        Action<WorkManagerOptions>? configureOptions = null,
        IServiceProvider? services = null,
        DateTimeOffset? start = null)
    {
        ArgumentNullException.ThrowIfNull(configureWorkers);
        var directory = Directory.CreateTempSubdirectory("converge-work-test-").FullName;
        var options = new WorkManagerOptions { DatabasePath = Path.Combine(directory, "work.db"), MaxConcurrency = 4 };
        configureOptions?.Invoke(options);
        var registry = new WorkerRegistry();
        configureWorkers(registry);
        var time = new FakeTimeProvider(start ?? new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var device = new TestDeviceStateMonitor();
        var manager = new WorkManager(options, registry, services, device, time);
        await manager.StartAsync().ConfigureAwait(false);
        return new WorkTestHost(directory, manager, time, device);
    }

    /// <summary>Waits until everything due at the current fake time has run.</summary>
    /// <returns>A task that completes when the scheduler is idle.</returns>
    public Task RunUntilIdleAsync() => Manager.WhenIdleAsync();

    /// <summary>Advances the fake clock and waits until everything due by then has run.</summary>
    /// <param name="delta">How far to move the clock.</param>
    /// <returns>A task that completes when the scheduler is idle.</returns>
    public async Task AdvanceAsync(TimeSpan delta)
    {
        await Manager.WhenIdleAsync().ConfigureAwait(false);
        Time.Advance(delta);
        await Manager.WhenIdleAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the scheduler and deletes the store.</summary>
    /// <returns>A task that completes when everything is released.</returns>
    public async ValueTask DisposeAsync()
    {
        await Manager.DisposeAsync().ConfigureAwait(false);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
