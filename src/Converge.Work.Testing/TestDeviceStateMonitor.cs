namespace Converge.Work.Testing;

/// <summary>A device state that tests set by hand; every change raises <see cref="Changed"/> at once.</summary>
public sealed class TestDeviceStateMonitor : IDeviceStateMonitor
{
    private readonly Lock _lock = new();
    private DeviceState _current;

    /// <summary>Initializes a monitor where every constraint holds.</summary>
    /// <param name="initial">The initial state; by default <see cref="DeviceState.Unconstrained"/>.</param>
    public TestDeviceStateMonitor(DeviceState? initial = null) => _current = initial ?? DeviceState.Unconstrained;

    /// <inheritdoc />
    public DeviceState Current
    {
        get
        {
            lock (_lock)
            {
                return _current;
            }
        }
    }

    /// <inheritdoc />
    public event EventHandler<DeviceState>? Changed;

    /// <summary>Sets the whole state.</summary>
    /// <param name="state">The new state.</param>
    public void Set(DeviceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        lock (_lock)
        {
            if (_current == state)
            {
                return;
            }

            _current = state;
        }

        Changed?.Invoke(this, state);
    }

    /// <summary>Sets the network state.</summary>
    /// <param name="network">The network state.</param>
    public void SetNetwork(NetworkState network) => Set(Current with { Network = network });

    /// <summary>Sets whether the device is charging.</summary>
    /// <param name="charging">Whether it charges.</param>
    public void SetCharging(bool charging) => Set(Current with { IsCharging = charging });

    /// <summary>Sets whether the battery is low.</summary>
    /// <param name="low">Whether it is low.</param>
    public void SetBatteryLow(bool low) => Set(Current with { IsBatteryLow = low });

    /// <summary>Sets whether storage is low.</summary>
    /// <param name="low">Whether it is low.</param>
    public void SetStorageLow(bool low) => Set(Current with { IsStorageLow = low });

    /// <summary>Sets whether the device is idle.</summary>
    /// <param name="idle">Whether it is idle.</param>
    public void SetIdle(bool idle) => Set(Current with { IsIdle = idle });
}
