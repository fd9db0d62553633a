using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Work.Tests.DeviceMonitoring;

public sealed class LinuxDeviceStateMonitorTests : IDisposable
{
    private readonly string _root;
    private readonly string _powerSupplyPath;
    private readonly FakeTimeProvider _time = new();

    public LinuxDeviceStateMonitorTests()
    {
        _root = Path.Combine(Path.GetTempPath(), "converge-linux-monitor-" + Guid.NewGuid().ToString("N"));
        _powerSupplyPath = Path.Combine(_root, "power_supply");
        Directory.CreateDirectory(_powerSupplyPath);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void No_power_supplies_means_charging_and_not_low()
    {
        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Missing_power_supply_folder_means_charging_and_not_low()
    {
        Directory.Delete(_powerSupplyPath);

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Discharging_battery_at_10_percent_is_low()
    {
        WriteBattery(10, "Discharging");

        using var monitor = CreateMonitor();

        Assert.False(monitor.Current.IsCharging);
        Assert.True(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Discharging_battery_at_the_low_threshold_is_low_and_just_above_is_not()
    {
        WriteBattery(15, "Discharging");
        using (var monitor = CreateMonitor())
        {
            Assert.True(monitor.Current.IsBatteryLow);
        }

        WriteBattery(16, "Discharging");
        using (var monitor = CreateMonitor())
        {
            Assert.False(monitor.Current.IsBatteryLow);
        }
    }

    [Fact]
    public void Low_battery_stays_low_until_it_reaches_the_okay_level()
    {
        WriteBattery(10, "Discharging");
        using var monitor = CreateMonitor();
        Assert.True(monitor.Current.IsBatteryLow);

        WriteBattery(17, "Discharging");
        monitor.Refresh();
        Assert.True(monitor.Current.IsBatteryLow);

        WriteBattery(19, "Discharging");
        monitor.Refresh();
        Assert.True(monitor.Current.IsBatteryLow);

        WriteBattery(20, "Discharging");
        monitor.Refresh();
        Assert.False(monitor.Current.IsBatteryLow);

        // Back in the band between the thresholds from above: not low until it drops to 15.
        WriteBattery(17, "Discharging");
        monitor.Refresh();
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Battery_at_17_percent_that_was_never_low_is_not_low()
    {
        WriteBattery(17, "Discharging");

        using var monitor = CreateMonitor();

        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Mains_online_means_charging_and_not_low_even_with_an_empty_battery()
    {
        WriteBattery(5, "Not charging");
        WriteSupply("AC", ("type", "Mains"), ("online", "1"));

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Mains_offline_with_a_discharging_battery_is_not_charging()
    {
        WriteBattery(80, "Discharging");
        WriteSupply("AC", ("type", "Mains"), ("online", "0"));

        using var monitor = CreateMonitor();

        Assert.False(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Theory]
    [InlineData("Charging")]
    [InlineData("Full")]
    public void Battery_charging_or_full_means_charging(string status)
    {
        WriteBattery(10, status);

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Usb_charger_online_means_charging()
    {
        WriteBattery(50, "Discharging");
        WriteSupply("usb0", ("type", "USB"), ("online", "1"));

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
    }

    [Fact]
    public void Peripheral_batteries_are_ignored()
    {
        WriteSupply("hidpp_battery_0", ("type", "Battery"), ("scope", "Device"), ("capacity", "5"), ("status", "Discharging"));

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsCharging);
        Assert.False(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Battery_without_capacity_file_uses_energy_now_over_energy_full()
    {
        WriteSupply("BAT0", ("type", "Battery"), ("status", "Discharging"), ("energy_now", "5000000"), ("energy_full", "50000000"));

        using var monitor = CreateMonitor();

        Assert.True(monitor.Current.IsBatteryLow);
    }

    [Fact]
    public void Refresh_after_unplugging_raises_Changed_exactly_once_with_the_new_state()
    {
        WriteBattery(10, "Discharging");
        WriteSupply("AC", ("type", "Mains"), ("online", "1"));
        using var monitor = CreateMonitor();
        var before = monitor.Current;
        Assert.True(before.IsCharging);
        var raised = new List<DeviceState>();
        monitor.Changed += (_, state) => raised.Add(state);

        WriteSupply("AC", ("type", "Mains"), ("online", "0"));
        monitor.Refresh();

        var state = Assert.Single(raised);
        Assert.Equal(before with { IsCharging = false, IsBatteryLow = true }, state);
        Assert.Same(state, monitor.Current);
    }

    [Fact]
    public void Refresh_without_changes_does_not_raise_Changed()
    {
        WriteBattery(50, "Discharging");
        using var monitor = CreateMonitor();
        var raised = 0;
        monitor.Changed += (_, _) => raised++;

        monitor.Refresh();
        WriteBattery(49, "Discharging"); // Changes a file but not the state.
        monitor.Refresh();

        Assert.Equal(0, raised);
    }

    [Fact]
    public void A_throwing_handler_does_not_stop_other_handlers_or_the_refresh()
    {
        WriteBattery(50, "Discharging");
        using var monitor = CreateMonitor();
        var raised = new List<DeviceState>();
        monitor.Changed += (_, _) => throw new InvalidOperationException("handler bug");
        monitor.Changed += (_, state) => raised.Add(state);

        WriteBattery(50, "Charging");
        monitor.Refresh();
        WriteBattery(50, "Discharging");
        monitor.Refresh();

        Assert.Equal([true, false], raised.Select(s => s.IsCharging));
    }

    [Fact]
    public void A_handler_calling_Refresh_gets_the_changes_in_order()
    {
        WriteBattery(50, "Discharging");
        using var monitor = CreateMonitor();
        var raised = new List<bool>();
        monitor.Changed += (_, state) =>
        {
            raised.Add(state.IsCharging);
            if (state.IsCharging)
            {
                WriteBattery(50, "Discharging");
                monitor.Refresh(); // Re-entrant: queued, raised after this handler returns.
                Assert.Single(raised);
            }
        };

        WriteBattery(50, "Charging");
        monitor.Refresh();

        Assert.Equal([true, false], raised);
        Assert.False(monitor.Current.IsCharging);
    }

    [Fact]
    public void Fallback_timer_re_reads_power_supplies_when_the_uevent_socket_is_not_used()
    {
        WriteBattery(50, "Discharging");
        using var monitor = CreateMonitor();
        var raised = new List<DeviceState>();
        monitor.Changed += (_, state) => raised.Add(state);

        WriteBattery(50, "Charging");
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.Empty(raised);

        _time.Advance(TimeSpan.FromSeconds(1));
        var state = Assert.Single(raised);
        Assert.True(state.IsCharging);

        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Single(raised);
    }

    [Fact]
    public void Fallback_timer_stops_on_Dispose()
    {
        WriteBattery(50, "Discharging");
        var monitor = CreateMonitor();
        var raised = 0;
        monitor.Changed += (_, _) => raised++;

        monitor.Dispose();
        WriteBattery(50, "Charging");
        _time.Advance(TimeSpan.FromMinutes(5));
        monitor.Refresh();

        Assert.Equal(0, raised);
        Assert.False(monitor.Current.IsCharging);
    }

    [Fact]
    public void Idle_comes_from_the_provider_and_is_polled_by_the_timer()
    {
        var idle = false;
        using var monitor = CreateMonitor(o => o.IdleProvider = () => idle);
        Assert.False(monitor.Current.IsIdle);
        var raised = new List<DeviceState>();
        monitor.Changed += (_, state) => raised.Add(state);

        idle = true;
        _time.Advance(TimeSpan.FromMinutes(1));

        Assert.True(Assert.Single(raised).IsIdle);
    }

    [Fact]
    public void Throwing_idle_provider_means_not_idle()
    {
        using var monitor = CreateMonitor(o => o.IdleProvider = () => throw new InvalidOperationException("no idea"));

        Assert.False(monitor.Current.IsIdle);
        monitor.Refresh();
        Assert.False(monitor.Current.IsIdle);
    }

    [Fact]
    public void Without_idle_provider_the_device_is_never_idle()
    {
        using var monitor = CreateMonitor();

        Assert.False(monitor.Current.IsIdle);
    }

    [Fact]
    public void Storage_uses_the_nearest_existing_parent_of_a_missing_data_directory()
    {
        var missing = Path.Combine(_root, "not", "yet", "created");

        Assert.Equal(_root, LinuxDeviceStateMonitor.FindExistingDirectory(missing));
        Assert.Equal(_root, LinuxDeviceStateMonitor.FindExistingDirectory(_root));
    }

    [Fact]
    public void Storage_is_low_when_the_thresholds_exceed_the_free_space()
    {
        // A threshold equal to the volume size: free space is always below it on a real, non-empty volume.
        using var low = CreateMonitor(o =>
        {
            o.DataDirectory = Path.Combine(_root, "missing");
            o.StorageLowFraction = 1;
            o.StorageLowBytes = long.MaxValue;
        });
        Assert.True(low.Current.IsStorageLow);

        using var never = CreateMonitor(o => o.StorageLowBytes = 0);
        Assert.False(never.Current.IsStorageLow);
    }

    [Fact]
    public void Storage_low_change_is_noticed_by_Refresh()
    {
        var options = Options();
        options.StorageLowBytes = 0;
        using var monitor = new LinuxDeviceStateMonitor(options, _time, NullLogger<LinuxDeviceStateMonitor>.Instance);
        var raised = new List<DeviceState>();
        monitor.Changed += (_, state) => raised.Add(state);

        // Stands in for the disk filling up: the threshold rises above the free space.
        options.StorageLowFraction = 1;
        options.StorageLowBytes = long.MaxValue;
        monitor.Refresh();

        Assert.True(Assert.Single(raised).IsStorageLow);
    }

    [Theory]
    // 1 GB volume: 10% (100,000,000) is under the 500 MiB cap, so it is the threshold.
    [InlineData(99_999_999, 1_000_000_000, true)]
    [InlineData(100_000_000, 1_000_000_000, false)]
    // 100 GB volume: 10% is 10 GB, so the 500 MiB cap is the threshold.
    [InlineData(524_287_999, 100_000_000_000, true)]
    [InlineData(524_288_000, 100_000_000_000, false)]
    [InlineData(0, 100_000_000_000, true)]
    // Unknown size: never low.
    [InlineData(0, 0, false)]
    public void IsStorageLow_is_free_below_min_of_10_percent_and_500_MiB(long free, long total, bool expected)
    {
        var options = Options();

        Assert.Equal(expected, LinuxDeviceStateMonitor.IsStorageLow(free, total, options));
    }

    [Fact]
    public void IsStorageLow_follows_custom_thresholds()
    {
        var options = Options();
        options.StorageLowBytes = 1_000;
        options.StorageLowFraction = 0.5;

        Assert.True(LinuxDeviceStateMonitor.IsStorageLow(999, 10_000, options));
        Assert.False(LinuxDeviceStateMonitor.IsStorageLow(1_000, 10_000, options));
        Assert.True(LinuxDeviceStateMonitor.IsStorageLow(499, 1_000, options));
        Assert.False(LinuxDeviceStateMonitor.IsStorageLow(500, 1_000, options));
    }

    [Fact]
    public void Options_have_the_documented_defaults()
    {
        var options = new LinuxDeviceStateMonitorOptions { DataDirectory = _root };

        Assert.Equal("/sys/class/power_supply", options.PowerSupplyPath);
        Assert.Equal("/sys/class/net", options.NetworkInterfacesPath);
        Assert.Equal(15, options.BatteryLowPercent);
        Assert.Equal(20, options.BatteryOkayPercent);
        Assert.Equal(500L * 1024 * 1024, options.StorageLowBytes);
        Assert.Equal(0.10, options.StorageLowFraction);
        Assert.Equal(TimeSpan.FromMinutes(1), options.FallbackRefreshInterval);
        Assert.Equal(["ww", "usb", "rmnet"], options.MeteredInterfacePrefixes);
        Assert.Null(options.IdleProvider);
        Assert.True(options.UseUeventSocket);
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        Assert.ThrowsAny<ArgumentException>(() => CreateMonitor(o => o.DataDirectory = " "));
        Assert.ThrowsAny<ArgumentException>(() => CreateMonitor(o => o.BatteryOkayPercent = 10));
        Assert.ThrowsAny<ArgumentException>(() => CreateMonitor(o => o.StorageLowFraction = 1.5));
        Assert.ThrowsAny<ArgumentException>(() => CreateMonitor(o => o.FallbackRefreshInterval = TimeSpan.Zero));
    }

    [Theory]
    [InlineData("wwan0", null, true)]
    [InlineData("wwp0s20f0u6", null, true)]
    [InlineData("usb0", null, true)]
    [InlineData("rmnet_data0", null, true)]
    [InlineData("eth0", null, false)]
    [InlineData("wlan0", null, false)]
    [InlineData("enp0s20", "DEVTYPE=wwan\nINTERFACE=enp0s20\n", true)]
    [InlineData("wlan0", "DEVTYPE=wlan\nINTERFACE=wlan0\n", false)]
    public void Metered_interfaces_are_recognised_by_name_prefix_or_wwan_device_type(string name, string? uevent, bool expected)
    {
        Assert.Equal(expected, LinuxNetwork.IsMeteredInterface(name, uevent, Options().MeteredInterfacePrefixes));
    }

    [Theory]
    [InlineData("192.0.2.2", true)]
    [InlineData("fd00::2", true)]
    [InlineData("2001:db8::1", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("::1", false)]
    [InlineData("169.254.10.20", false)]
    [InlineData("fe80::fc:ff:fe00:1", false)]
    public void Only_routable_unicast_addresses_count_as_connected(string address, bool expected)
    {
        Assert.Equal(expected, LinuxNetwork.IsRoutableUnicast(IPAddress.Parse(address)));
    }

    [Fact]
    public void Network_state_can_be_read()
    {
        using var monitor = CreateMonitor();

        Assert.NotNull(monitor.Current.Network);
        Assert.False(monitor.Current.Network.IsRoaming);
    }

    [Theory]
    [InlineData("change@/devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC\0ACTION=change\0SUBSYSTEM=power_supply\0POWER_SUPPLY_ONLINE=0\0", true)]
    [InlineData("change@/devices/virtual/net/lo\0ACTION=change\0SUBSYSTEM=net\0INTERFACE=lo\0", false)]
    [InlineData("add@/devices/x\0SUBSYSTEM=power_supply_extra\0", false)]
    [InlineData("add@/devices/x\0SUBSYSTEM=power_supply", true)]
    [InlineData("", false)]
    public void Power_supply_uevents_are_recognised(string message, bool expected)
    {
        Assert.Equal(expected, UeventSocket.IsPowerSupplyEvent(Encoding.ASCII.GetBytes(message)));
    }

    [Fact]
    public void Monitor_with_the_uevent_socket_starts_and_stops_cleanly()
    {
        WriteBattery(50, "Discharging");
        var monitor = CreateMonitor(o => o.UseUeventSocket = true);

        Assert.False(monitor.Current.IsCharging);
        monitor.Dispose();
        monitor.Dispose();
    }

    [Fact]
    public void With_the_uevent_socket_open_power_waits_for_uevents_and_without_it_the_timer_polls()
    {
        Assert.True(OperatingSystem.IsLinux(), "The Linux device monitor tests run on Linux.");
        bool socketOpens;
        try
        {
            using var probe = UeventSocket.Open();
            socketOpens = true;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or System.Net.Sockets.SocketException)
        {
            socketOpens = false; // sandboxes and containers may forbid netlink sockets
        }

        WriteBattery(50, "Discharging");
        using var monitor = CreateMonitor(o => o.UseUeventSocket = true);
        Assert.False(monitor.Current.IsCharging); // the initial state is read from the power supplies folder

        // No uevent announces this change (the folder is not the kernel's): only a poll can see it. With the socket
        // open, the timer leaves power supplies to uevents; without it, the timer polls them.
        WriteBattery(50, "Charging");
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(!socketOpens, monitor.Current.IsCharging);

        monitor.Refresh();
        Assert.True(monitor.Current.IsCharging);
    }

    private LinuxDeviceStateMonitorOptions Options() => new()
    {
        DataDirectory = _root,
        PowerSupplyPath = _powerSupplyPath,
        UseUeventSocket = false,
    };

    private LinuxDeviceStateMonitor CreateMonitor(Action<LinuxDeviceStateMonitorOptions>? configure = null)
    {
        var options = Options();
        configure?.Invoke(options);
        return new LinuxDeviceStateMonitor(options, _time, NullLogger<LinuxDeviceStateMonitor>.Instance);
    }

    private void WriteBattery(int capacity, string status) =>
        WriteSupply(
            "BAT0",
            ("type", "Battery"),
            ("present", "1"),
            ("capacity", capacity.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("status", status));

    private void WriteSupply(string name, params (string Attribute, string Value)[] attributes)
    {
        var folder = Path.Combine(_powerSupplyPath, name);
        Directory.CreateDirectory(folder);
        foreach (var (attribute, value) in attributes)
        {
            // sysfs attributes end with a newline.
            File.WriteAllText(Path.Combine(folder, attribute), value + "\n");
        }
    }
}
