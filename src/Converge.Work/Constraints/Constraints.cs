namespace Converge.Work;

/// <summary>The kind of network work needs before it may run.</summary>
public enum NetworkType
{
    /// <summary>No network is needed.</summary>
    NotRequired = 0,

    /// <summary>Any working connection.</summary>
    Connected = 1,

    /// <summary>A connection that is not billed by use.</summary>
    Unmetered = 2,

    /// <summary>A connection that is not roaming.</summary>
    NotRoaming = 3,

    /// <summary>A metered connection.</summary>
    Metered = 4,
}

/// <summary>The device conditions work waits for before it runs, and whose loss stops it while it runs.</summary>
/// <param name="RequiredNetworkType">The network needed.</param>
/// <param name="RequiresCharging">Whether the device must be charging.</param>
/// <param name="RequiresBatteryNotLow">Whether the battery must not be low.</param>
/// <param name="RequiresStorageNotLow">Whether free storage must not be low.</param>
/// <param name="RequiresDeviceIdle">Whether the device must be idle.</param>
public sealed record Constraints(
    NetworkType RequiredNetworkType = NetworkType.NotRequired,
    bool RequiresCharging = false,
    bool RequiresBatteryNotLow = false,
    bool RequiresStorageNotLow = false,
    bool RequiresDeviceIdle = false)
{
    /// <summary>Gets the constraints that are always met.</summary>
    public static Constraints None { get; } = new();

    /// <summary>Gets whether any constraint is set.</summary>
    public bool HasAny => this != None;

    /// <summary>Checks the constraints against a device state.</summary>
    /// <param name="state">The device state.</param>
    /// <returns><see cref="StopReason.NotStopped"/> when every constraint holds, else the reason of the first that does not.</returns>
    public StopReason Evaluate(DeviceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var network = state.Network;
        var networkOk = RequiredNetworkType switch
        {
            NetworkType.NotRequired => true,
            NetworkType.Connected => network.IsConnected,
            NetworkType.Unmetered => network.IsConnected && !network.IsMetered,
            NetworkType.NotRoaming => network.IsConnected && !network.IsRoaming,
            NetworkType.Metered => network.IsConnected && network.IsMetered,
            _ => false,
        };
        if (!networkOk)
        {
            return StopReason.ConstraintConnectivity;
        }

        if (RequiresCharging && !state.IsCharging)
        {
            return StopReason.ConstraintCharging;
        }

        if (RequiresBatteryNotLow && state.IsBatteryLow)
        {
            return StopReason.ConstraintBatteryNotLow;
        }

        if (RequiresStorageNotLow && state.IsStorageLow)
        {
            return StopReason.ConstraintStorageNotLow;
        }

        if (RequiresDeviceIdle && !state.IsIdle)
        {
            return StopReason.ConstraintDeviceIdle;
        }

        return StopReason.NotStopped;
    }
}
