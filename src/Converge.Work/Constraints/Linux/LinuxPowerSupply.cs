using System.Globalization;

namespace Converge.Work;

/// <summary>What the kernel's power supply class says, summed over all system supplies.</summary>
/// <param name="HasBattery">Whether at least one system battery is present.</param>
/// <param name="IsExternalPowerOnline">Whether a mains, USB or wireless charger supply is online.</param>
/// <param name="IsBatteryCharging">Whether a battery reports <c>Charging</c> or <c>Full</c>.</param>
/// <param name="CapacityPercent">The mean charge of the batteries, or <see langword="null"/> when unknown.</param>
internal readonly record struct PowerSupplySnapshot(
    bool HasBattery,
    bool IsExternalPowerOnline,
    bool IsBatteryCharging,
    int? CapacityPercent)
{
    /// <summary>A machine without power supplies (a server, a desktop, a container).</summary>
    public static PowerSupplySnapshot None => default;
}

/// <summary>Reads <c>/sys/class/power_supply</c> and turns it into charging and battery-low answers.</summary>
internal static class LinuxPowerSupply
{
    /// <summary>Reads every supply under <paramref name="powerSupplyPath"/>.</summary>
    /// <param name="powerSupplyPath">The sysfs power supply class folder.</param>
    /// <returns>The summary; <see cref="PowerSupplySnapshot.None"/> when the folder doesn't exist.</returns>
    /// <exception cref="IOException">The folder could not be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder could not be listed.</exception>
    public static PowerSupplySnapshot Read(string powerSupplyPath)
    {
        if (!Directory.Exists(powerSupplyPath))
        {
            return PowerSupplySnapshot.None;
        }

        var hasBattery = false;
        var externalOnline = false;
        var batteryCharging = false;
        var capacitySum = 0;
        var capacityCount = 0;

        // The entries are symbolic links to the device folders, so list entries of any kind.
        foreach (var supply in Directory.EnumerateFileSystemEntries(powerSupplyPath))
        {
            var type = ReadAttribute(supply, "type");
            if (type is null || string.Equals(ReadAttribute(supply, "scope"), "Device", StringComparison.OrdinalIgnoreCase))
            {
                // Not a supply, or a peripheral's own battery (mouse, headset), which says nothing about this machine.
                continue;
            }

            if (string.Equals(type, "Battery", StringComparison.OrdinalIgnoreCase))
            {
                if (ReadInt(supply, "present") == 0)
                {
                    continue; // An empty battery bay.
                }

                hasBattery = true;
                var status = ReadAttribute(supply, "status");
                if (string.Equals(status, "Charging", StringComparison.OrdinalIgnoreCase) ||
                    string.Equals(status, "Full", StringComparison.OrdinalIgnoreCase))
                {
                    batteryCharging = true;
                }

                if (ReadCapacity(supply) is int capacity)
                {
                    capacitySum += capacity;
                    capacityCount++;
                }
            }
            else if (IsChargerType(type) && ReadInt(supply, "online") > 0)
            {
                externalOnline = true;
            }
        }

        return new PowerSupplySnapshot(
            hasBattery,
            externalOnline,
            batteryCharging,
            capacityCount == 0 ? null : capacitySum / capacityCount);
    }

    /// <summary>Decides whether the device is charging and whether its battery is low.</summary>
    /// <param name="snapshot">The supplies.</param>
    /// <param name="wasBatteryLow">The previous battery-low answer, for the hysteresis.</param>
    /// <param name="options">The thresholds.</param>
    /// <returns>
    /// Without a battery: charging and not low. Otherwise charging when a charger is online or a battery charges or is
    /// full; low when not charging and the charge is at most <see cref="LinuxDeviceStateMonitorOptions.BatteryLowPercent"/>,
    /// or, when it was already low, still under <see cref="LinuxDeviceStateMonitorOptions.BatteryOkayPercent"/>.
    /// </returns>
    public static (bool IsCharging, bool IsBatteryLow) Evaluate(
        PowerSupplySnapshot snapshot, bool wasBatteryLow, LinuxDeviceStateMonitorOptions options)
    {
        if (!snapshot.HasBattery)
        {
            return (true, false);
        }

        var charging = snapshot.IsExternalPowerOnline || snapshot.IsBatteryCharging;
        if (charging || snapshot.CapacityPercent is not int capacity)
        {
            return (charging, false);
        }

        var low = wasBatteryLow ? capacity < options.BatteryOkayPercent : capacity <= options.BatteryLowPercent;
        return (false, low);
    }

    private static bool IsChargerType(string type) =>
        string.Equals(type, "Mains", StringComparison.OrdinalIgnoreCase) ||
        string.Equals(type, "Wireless", StringComparison.OrdinalIgnoreCase) ||
        type.StartsWith("USB", StringComparison.OrdinalIgnoreCase); // USB, and old kernels' USB_C, USB_PD, USB_DCP, ...

    private static int? ReadCapacity(string supply)
    {
        if (ReadInt(supply, "capacity") is int capacity)
        {
            return Math.Clamp(capacity, 0, 100);
        }

        // Some drivers only expose the charge (µAh) or the energy (µWh).
        var now = ReadLong(supply, "charge_now") ?? ReadLong(supply, "energy_now");
        var full = ReadLong(supply, "charge_full") ?? ReadLong(supply, "energy_full");
        return now is long n && full is long f && f > 0 ? (int)Math.Clamp(n * 100 / f, 0, 100) : null;
    }

    private static int? ReadInt(string supply, string attribute) =>
        int.TryParse(ReadAttribute(supply, attribute), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;

    private static long? ReadLong(string supply, string attribute) =>
        long.TryParse(ReadAttribute(supply, attribute), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;

    /// <summary>Reads one sysfs attribute, trimmed; <see langword="null"/> when it is missing or unreadable.</summary>
    private static string? ReadAttribute(string supply, string attribute)
    {
        try
        {
            return File.ReadAllText(Path.Combine(supply, attribute)).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Missing files, and attributes whose driver answers the read with an error (ENODATA, EINVAL, ENODEV).
            return null;
        }
    }
}
