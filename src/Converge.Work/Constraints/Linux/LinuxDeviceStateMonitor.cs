using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>Reports the network, power, storage and idle state of a Linux machine.</summary>
/// <remarks>
/// <list type="bullet">
/// <item>Network: <see cref="NetworkInterface"/>, re-read on <see cref="NetworkChange"/> notifications. See
/// <see cref="LinuxNetwork.Read"/> for what counts as connected and metered. Roaming is never reported.</item>
/// <item>Power: <c>/sys/class/power_supply</c>, re-read when the kernel announces a <c>power_supply</c> uevent, or every
/// <see cref="LinuxDeviceStateMonitorOptions.FallbackRefreshInterval"/> when the uevent socket cannot be opened.</item>
/// <item>Storage: the free space of <see cref="LinuxDeviceStateMonitorOptions.DataDirectory"/>'s volume, re-read every
/// <see cref="LinuxDeviceStateMonitorOptions.FallbackRefreshInterval"/> and on <see cref="Refresh"/>.</item>
/// <item>Idle: <see cref="LinuxDeviceStateMonitorOptions.IdleProvider"/>, polled on every refresh.</item>
/// </list>
/// <para>
/// <see cref="Changed"/> is raised only when the combined <see cref="DeviceState"/> changes, never while a lock is
/// held, in the order the changes happened, and on whichever thread noticed the change (the caller of
/// <see cref="Refresh"/>, a timer, the uevent listener or a network notification). A handler that throws is logged
/// and does not stop the other handlers or the source that noticed the change. Handlers may call <see cref="Refresh"/>.
/// </para>
/// </remarks>
public sealed class LinuxDeviceStateMonitor : IDeviceStateMonitor, IDisposable
{
    private readonly LinuxDeviceStateMonitorOptions _options;
    private readonly ILogger<LinuxDeviceStateMonitor> _logger;
    private readonly CancellationTokenSource _disposing = new();

    /// <summary>Guards the source fields, the pending-changes queue and <see cref="_draining"/>.</summary>
    private readonly Lock _gate = new();
    private readonly Queue<DeviceState> _pending = new();
    private bool _draining;

    private NetworkState _network = NetworkState.Disconnected;
    private bool _isCharging = true;
    private bool _isBatteryLow;
    private bool _isStorageLow;
    private bool _isIdle;
    private bool _networkReadFailing;
    private bool _powerReadFailing;
    private bool _storageReadFailing;

    private volatile DeviceState _current;
    private volatile bool _ueventActive;
    private volatile bool _networkEventsActive;
    private bool _idleReadFailing;
    private int _disposed;

    private readonly UeventSocket? _uevent;
    private readonly ITimer? _timer;

    /// <summary>Initializes a new instance of the <see cref="LinuxDeviceStateMonitor"/> class and reads every source.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="timeProvider">Drives the fallback refresh timer.</param>
    /// <param name="logger">The logger.</param>
    /// <exception cref="ArgumentException"><see cref="LinuxDeviceStateMonitorOptions.DataDirectory"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A threshold or the refresh interval is out of range.</exception>
    public LinuxDeviceStateMonitor(
        LinuxDeviceStateMonitorOptions options,
        TimeProvider timeProvider,
        ILogger<LinuxDeviceStateMonitor> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        Validate(options);
        _options = options;
        _logger = logger;

        // Placeholder until the first read below; nobody can have subscribed to Changed yet.
        _current = Compose();

        // Subscribe before the first read so that no change falls between the read and the subscription.
        try
        {
            NetworkChange.NetworkAddressChanged += OnNetworkChanged;
            NetworkChange.NetworkAvailabilityChanged += OnNetworkChanged;
            _networkEventsActive = true;
        }
        catch (Exception ex)
        {
            UnsubscribeNetwork();
            LinuxDeviceStateMonitorLog.NetworkChangeUnavailable(_logger, options.FallbackRefreshInterval, ex);
        }

        if (!options.UseUeventSocket)
        {
            LinuxDeviceStateMonitorLog.UeventSocketDisabled(_logger, options.FallbackRefreshInterval);
        }
        else
        {
            try
            {
                _uevent = UeventSocket.Open();
                _ueventActive = true;
            }
            catch (Exception ex)
            {
                LinuxDeviceStateMonitorLog.UeventSocketUnavailable(_logger, options.FallbackRefreshInterval, ex.Message);
            }
        }

        var idle = ReadIdle();
        lock (_gate)
        {
            ReadSources(Sources.All);
            _isIdle = idle ?? false;
            _current = Compose();
        }

        LinuxDeviceStateMonitorLog.InitialState(_logger, _current);

        if (_uevent is not null)
        {
            _ = Task.Run(() => ListenAsync(_uevent, _disposing.Token));
        }

        if (options.FallbackRefreshInterval != Timeout.InfiniteTimeSpan)
        {
            _timer = timeProvider.CreateTimer(
                static state => ((LinuxDeviceStateMonitor)state!).OnTimer(),
                this,
                options.FallbackRefreshInterval,
                options.FallbackRefreshInterval);
        }
    }

    /// <inheritdoc/>
    public event EventHandler<DeviceState>? Changed;

    [Flags]
    private enum Sources
    {
        None = 0,
        Network = 1,
        Power = 2,
        Storage = 4,
        Idle = 8,
        All = Network | Power | Storage | Idle,
    }

    /// <inheritdoc/>
    public DeviceState Current => _current;

    /// <summary>Re-reads every source now, and raises <see cref="Changed"/> before returning if the state changed.</summary>
    /// <remarks>
    /// Storage has no change event, so its figure is otherwise re-read every
    /// <see cref="LinuxDeviceStateMonitorOptions.FallbackRefreshInterval"/>; call this when the app knows it just wrote a
    /// lot of data. Does nothing after <see cref="Dispose"/>.
    /// </remarks>
    public void Refresh() => RefreshCore(Sources.All);

    /// <summary>Decides whether free space is low: Android's rule.</summary>
    /// <param name="freeBytes">The space available to this process.</param>
    /// <param name="totalBytes">The size of the volume.</param>
    /// <param name="options">The thresholds.</param>
    /// <returns>
    /// Whether <paramref name="freeBytes"/> is strictly less than
    /// <c>min(totalBytes × StorageLowFraction, StorageLowBytes)</c>: 10% of the volume, capped at 500 MiB, by default.
    /// <see langword="false"/> when the size is unknown (0 or less).
    /// </returns>
    internal static bool IsStorageLow(long freeBytes, long totalBytes, LinuxDeviceStateMonitorOptions options)
    {
        if (totalBytes <= 0)
        {
            return false;
        }

        var fractionBytes = (long)Math.Min(totalBytes * options.StorageLowFraction, long.MaxValue);
        return freeBytes < Math.Min(fractionBytes, options.StorageLowBytes);
    }

    /// <summary>Finds the folder to measure: <paramref name="path"/>, or its nearest existing parent.</summary>
    /// <param name="path">The data folder.</param>
    /// <returns>An existing folder, or the root of <paramref name="path"/> if none of it exists.</returns>
    internal static string FindExistingDirectory(string path)
    {
        var current = Path.GetFullPath(path);
        while (!Directory.Exists(current))
        {
            var parent = Path.GetDirectoryName(current);
            if (parent is null)
            {
                break;
            }

            current = parent;
        }

        return current;
    }

    /// <summary>Stops listening for changes. <see cref="Current"/> keeps its last value.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        UnsubscribeNetwork();
        _timer?.Dispose();
        _disposing.Cancel();
        _uevent?.Dispose();
        _disposing.Dispose();
    }

    private static void Validate(LinuxDeviceStateMonitorOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(options.DataDirectory, nameof(options));
        ArgumentException.ThrowIfNullOrWhiteSpace(options.PowerSupplyPath, nameof(options));
        ArgumentException.ThrowIfNullOrWhiteSpace(options.NetworkInterfacesPath, nameof(options));
        ArgumentNullException.ThrowIfNull(options.MeteredInterfacePrefixes, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.BatteryLowPercent, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BatteryLowPercent, 100, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatteryOkayPercent, options.BatteryLowPercent, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.StorageLowBytes, nameof(options));
        if (!(options.StorageLowFraction is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.StorageLowFraction, "StorageLowFraction must be between 0 and 1.");
        }

        if (options.FallbackRefreshInterval <= TimeSpan.Zero && options.FallbackRefreshInterval != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(
                nameof(options), options.FallbackRefreshInterval, "FallbackRefreshInterval must be positive or infinite.");
        }
    }

    private bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    private void OnNetworkChanged(object? sender, EventArgs e) => RefreshCore(Sources.Network);

    private void OnTimer()
    {
        var sources = Sources.Storage | Sources.Idle;
        if (!_ueventActive)
        {
            sources |= Sources.Power;
        }

        if (!_networkEventsActive)
        {
            sources |= Sources.Network;
        }

        RefreshCore(sources);
    }

    private async Task ListenAsync(UeventSocket socket, CancellationToken cancellationToken)
    {
        LinuxDeviceStateMonitorLog.UeventListening(_logger);
        var buffer = new byte[8192];
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                int received;
                try
                {
                    received = await socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (System.Net.Sockets.SocketException ex)
                    when (ex.SocketErrorCode == System.Net.Sockets.SocketError.NoBufferSpaceAvailable)
                {
                    // ENOBUFS: the kernel dropped events because we fell behind (a burst at hotplug). Some may have been
                    // about power supplies, so re-read them.
                    RefreshCore(Sources.Power);
                    continue;
                }

                if (UeventSocket.IsPowerSupplyEvent(buffer.AsSpan(0, received)))
                {
                    RefreshCore(Sources.Power);
                }
            }
        }
        catch (Exception) when (IsDisposed)
        {
            // Dispose cancelled the receive or closed the socket.
        }
        catch (Exception ex)
        {
            _ueventActive = false;
            LinuxDeviceStateMonitorLog.UeventListenerFailed(_logger, _options.FallbackRefreshInterval, ex);
            socket.Dispose();
            RefreshCore(Sources.Power);
        }
    }

    private void UnsubscribeNetwork()
    {
        _networkEventsActive = false;
        try
        {
            NetworkChange.NetworkAddressChanged -= OnNetworkChanged;
            NetworkChange.NetworkAvailabilityChanged -= OnNetworkChanged;
        }
        catch (Exception)
        {
            // Unsubscribing what could not be subscribed.
        }
    }

    /// <summary>Re-reads <paramref name="sources"/> and publishes the combined state if it changed.</summary>
    private void RefreshCore(Sources sources)
    {
        if (IsDisposed)
        {
            return;
        }

        var idle = (sources & Sources.Idle) != 0 ? ReadIdle() : null;
        lock (_gate)
        {
            ReadSources(sources);
            _isIdle = idle ?? _isIdle;
            var state = Compose();
            if (state == _current)
            {
                return;
            }

            _current = state;
            _pending.Enqueue(state);
            if (_draining)
            {
                // Another thread (or a handler up this thread's stack) is raising Changed and will raise this too.
                return;
            }

            _draining = true;
        }

        DrainPending();
    }

    /// <summary>Raises <see cref="Changed"/> for each pending state, in order, outside the lock.</summary>
    private void DrainPending()
    {
        while (true)
        {
            DeviceState state;
            lock (_gate)
            {
                if (!_pending.TryDequeue(out state!))
                {
                    _draining = false;
                    return;
                }
            }

            LinuxDeviceStateMonitorLog.StateChanged(_logger, state);
            var handlers = Changed;
            if (handlers is null)
            {
                continue;
            }

            foreach (var handler in Delegate.EnumerateInvocationList(handlers))
            {
                try
                {
                    handler(this, state);
                }
                catch (Exception ex)
                {
                    LinuxDeviceStateMonitorLog.ChangedHandlerFailed(_logger, ex);
                }
            }
        }
    }

    private DeviceState Compose() => new(_network, _isCharging, _isBatteryLow, _isStorageLow, _isIdle);

    /// <summary>
    /// Reads the system sources (not idle) into the fields. Caller holds <see cref="_gate"/>, which keeps each read and
    /// its use (the battery hysteresis) together. A source that fails keeps its value.
    /// </summary>
    private void ReadSources(Sources sources)
    {
        if ((sources & Sources.Network) != 0)
        {
            try
            {
                _network = LinuxNetwork.Read(_options);
                _networkReadFailing = false;
            }
            catch (Exception ex)
            {
                if (!_networkReadFailing)
                {
                    _networkReadFailing = true;
                    LinuxDeviceStateMonitorLog.NetworkReadFailed(_logger, ex);
                }
            }
        }

        if ((sources & Sources.Power) != 0)
        {
            try
            {
                var snapshot = LinuxPowerSupply.Read(_options.PowerSupplyPath);
                (_isCharging, _isBatteryLow) = LinuxPowerSupply.Evaluate(snapshot, _isBatteryLow, _options);
                _powerReadFailing = false;
            }
            catch (Exception ex)
            {
                if (!_powerReadFailing)
                {
                    _powerReadFailing = true;
                    LinuxDeviceStateMonitorLog.PowerReadFailed(_logger, _options.PowerSupplyPath, ex);
                }
            }
        }

        if ((sources & Sources.Storage) != 0)
        {
            try
            {
                var drive = new DriveInfo(FindExistingDirectory(_options.DataDirectory));
                _isStorageLow = IsStorageLow(drive.AvailableFreeSpace, drive.TotalSize, _options);
                _storageReadFailing = false;
            }
            catch (Exception ex)
            {
                if (!_storageReadFailing)
                {
                    _storageReadFailing = true;
                    LinuxDeviceStateMonitorLog.StorageReadFailed(_logger, _options.DataDirectory, ex);
                }
            }
        }
    }

    /// <summary>Asks <see cref="LinuxDeviceStateMonitorOptions.IdleProvider"/>, outside any lock since it is user code.</summary>
    private bool? ReadIdle()
    {
        if (_options.IdleProvider is not { } idleProvider)
        {
            return null;
        }

        try
        {
            var idle = idleProvider();
            Volatile.Write(ref _idleReadFailing, false);
            return idle;
        }
        catch (Exception ex)
        {
            if (!Interlocked.Exchange(ref _idleReadFailing, true))
            {
                LinuxDeviceStateMonitorLog.IdleProviderFailed(_logger, ex);
            }

            return false;
        }
    }
}
