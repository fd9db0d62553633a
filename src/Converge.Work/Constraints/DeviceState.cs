namespace Converge.Work;

/// <summary>A snapshot of the device conditions that work constraints are checked against.</summary>
/// <param name="Network">The state of the network connection.</param>
/// <param name="IsCharging">Whether the device is on external power.</param>
/// <param name="IsBatteryLow">Whether the battery is low (and not charging).</param>
/// <param name="IsStorageLow">Whether free space in the data folder is low.</param>
/// <param name="IsIdle">Whether the device is idle (no user activity).</param>
public sealed record DeviceState(
    NetworkState Network,
    bool IsCharging,
    bool IsBatteryLow,
    bool IsStorageLow,
    bool IsIdle)
{
    /// <summary>A device on an unmetered, non-roaming connection, charging, with space to spare, not idle.</summary>
    /// <remarks>Servers and desktops without a battery are best described by this state.</remarks>
    public static DeviceState Unconstrained { get; } =
        new(NetworkState.Unmetered, IsCharging: true, IsBatteryLow: false, IsStorageLow: false, IsIdle: false);
}

/// <summary>The state of the device's network connection.</summary>
/// <param name="IsConnected">Whether a usable network connection is up.</param>
/// <param name="IsMetered">Whether the connection is billed by use.</param>
/// <param name="IsRoaming">Whether the connection is roaming.</param>
public sealed record NetworkState(bool IsConnected, bool IsMetered, bool IsRoaming)
{
    /// <summary>No network connection.</summary>
    public static NetworkState Disconnected { get; } = new(false, false, false);

    /// <summary>Connected, unmetered, not roaming.</summary>
    public static NetworkState Unmetered { get; } = new(true, false, false);

    /// <summary>Connected over a metered connection, not roaming.</summary>
    public static NetworkState Metered { get; } = new(true, true, false);
}

/// <summary>Reports the device conditions that constraints depend on, and raises an event when they change.</summary>
/// <remarks>
/// The scheduler re-evaluates constraints only when <see cref="Changed"/> fires, so an implementation should raise it
/// promptly on every change and never require the scheduler to poll. Implementations must be thread-safe.
/// </remarks>
public interface IDeviceStateMonitor
{
    /// <summary>Gets the current device state.</summary>
    DeviceState Current { get; }

    /// <summary>Raised after <see cref="Current"/> changes, with the new state.</summary>
    event EventHandler<DeviceState>? Changed;
}
