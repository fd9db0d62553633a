using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>Between constraints, device states and their bits.</summary>
internal static class ConstraintBitsExtensions
{
    public static ConstraintBits Required(this Constraints c)
    {
        var bits = c.RequiredNetworkType switch
        {
            NetworkType.Connected => ConstraintBits.NetworkConnected,
            NetworkType.Unmetered => ConstraintBits.NetworkUnmetered,
            NetworkType.NotRoaming => ConstraintBits.NetworkNotRoaming,
            NetworkType.Metered => ConstraintBits.NetworkMetered,
            _ => ConstraintBits.None,
        };
        if (c.RequiresCharging)
        {
            bits |= ConstraintBits.Charging;
        }

        if (c.RequiresBatteryNotLow)
        {
            bits |= ConstraintBits.BatteryNotLow;
        }

        if (c.RequiresStorageNotLow)
        {
            bits |= ConstraintBits.StorageNotLow;
        }

        if (c.RequiresDeviceIdle)
        {
            bits |= ConstraintBits.DeviceIdle;
        }

        return bits;
    }

    private static readonly Constraints[] s_constraints = Enumerable.Range(0, 256).Select(b => Build((ConstraintBits)b)).ToArray();

    /// <summary>The constraints a stored bit set stands for; there are only 256, so they are made once.</summary>
    public static Constraints ToConstraints(this ConstraintBits bits) => (int)bits is >= 0 and < 256 ? s_constraints[(int)bits] : Build(bits);

    private static Constraints Build(ConstraintBits bits) => new(
        (bits & ConstraintBits.NetworkConnected) != 0 ? NetworkType.Connected
        : (bits & ConstraintBits.NetworkUnmetered) != 0 ? NetworkType.Unmetered
        : (bits & ConstraintBits.NetworkNotRoaming) != 0 ? NetworkType.NotRoaming
        : (bits & ConstraintBits.NetworkMetered) != 0 ? NetworkType.Metered
        : NetworkType.NotRequired,
        (bits & ConstraintBits.Charging) != 0,
        (bits & ConstraintBits.BatteryNotLow) != 0,
        (bits & ConstraintBits.StorageNotLow) != 0,
        (bits & ConstraintBits.DeviceIdle) != 0);

    /// <summary>The requirements a device state does not meet.</summary>
    public static ConstraintBits Unmet(this DeviceState s)
    {
        var unmet = ConstraintBits.None;
        var n = s.Network;
        if (!n.IsConnected)
        {
            unmet |= ConstraintBits.NetworkConnected;
        }

        if (!n.IsConnected || n.IsMetered)
        {
            unmet |= ConstraintBits.NetworkUnmetered;
        }

        if (!n.IsConnected || n.IsRoaming)
        {
            unmet |= ConstraintBits.NetworkNotRoaming;
        }

        if (!n.IsConnected || !n.IsMetered)
        {
            unmet |= ConstraintBits.NetworkMetered;
        }

        if (!s.IsCharging)
        {
            unmet |= ConstraintBits.Charging;
        }

        if (s.IsBatteryLow)
        {
            unmet |= ConstraintBits.BatteryNotLow;
        }

        if (s.IsStorageLow)
        {
            unmet |= ConstraintBits.StorageNotLow;
        }

        if (!s.IsIdle)
        {
            unmet |= ConstraintBits.DeviceIdle;
        }

        return unmet;
    }
}
