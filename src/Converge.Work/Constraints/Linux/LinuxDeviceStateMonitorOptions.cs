namespace Converge.Work;

/// <summary>Settings for <see cref="LinuxDeviceStateMonitor"/>.</summary>
/// <remarks>
/// The monitor reads these settings each time it evaluates a source, so they should be configured before the
/// monitor is created and left alone afterwards.
/// </remarks>
public sealed class LinuxDeviceStateMonitorOptions
{
    /// <summary>The default value of <see cref="PowerSupplyPath"/>.</summary>
    public const string DefaultPowerSupplyPath = "/sys/class/power_supply";

    /// <summary>The default value of <see cref="NetworkInterfacesPath"/>.</summary>
    public const string DefaultNetworkInterfacesPath = "/sys/class/net";

    /// <summary>The default value of <see cref="StorageLowBytes"/>: 500 MiB, Android's cap on the low-storage threshold.</summary>
    public const long DefaultStorageLowBytes = 500L * 1024 * 1024;

    /// <summary>
    /// Gets or sets the folder whose volume's free space decides <see cref="DeviceState.IsStorageLow"/>. Required.
    /// </summary>
    /// <remarks>
    /// The folder does not need to exist: when it is missing, its nearest existing parent is measured, which is on the
    /// same volume in all but exotic mount layouts.
    /// </remarks>
    public required string DataDirectory { get; set; }

    /// <summary>
    /// Gets or sets the sysfs folder that lists the power supplies. Default <c>/sys/class/power_supply</c>; tests point it
    /// at a fake tree.
    /// </summary>
    /// <remarks>
    /// Each sub-folder is one supply with the attribute files <c>type</c> (<c>Battery</c>, <c>Mains</c>, <c>USB</c>,
    /// <c>Wireless</c>, ...), <c>online</c>, <c>status</c>, <c>capacity</c> and optionally <c>present</c> and
    /// <c>scope</c>. Supplies whose <c>scope</c> is <c>Device</c> (the battery of a wireless mouse or headset) are ignored.
    /// </remarks>
    public string PowerSupplyPath { get; set; } = DefaultPowerSupplyPath;

    /// <summary>
    /// Gets or sets the sysfs folder that lists the network interfaces. Default <c>/sys/class/net</c>.
    /// </summary>
    /// <remarks>
    /// Used to read an interface's <c>uevent</c> (a <c>DEVTYPE=wwan</c> interface is treated as metered) and its
    /// <c>carrier</c> (an interface whose operational state is <c>unknown</c>, as for WireGuard, tun and PPP links,
    /// counts as up when it has carrier).
    /// </remarks>
    public string NetworkInterfacesPath { get; set; } = DefaultNetworkInterfacesPath;

    /// <summary>
    /// Gets or sets the battery percentage at or below which a discharging battery is low. Default 15, as on Android.
    /// </summary>
    public int BatteryLowPercent { get; set; } = 15;

    /// <summary>
    /// Gets or sets the battery percentage at or above which a battery that was low is okay again. Default 20, as on
    /// Android (where "battery okay" is announced 5 points above the low level).
    /// </summary>
    /// <remarks>
    /// Between <see cref="BatteryLowPercent"/> and this value the previous answer stands, so a battery hovering around
    /// the threshold doesn't make constrained work start and stop repeatedly. Plugging in the charger clears the low
    /// state at once.
    /// </remarks>
    public int BatteryOkayPercent { get; set; } = 20;

    /// <summary>
    /// Gets or sets the cap, in bytes, of the low-storage threshold. Default 500 MiB.
    /// </summary>
    /// <remarks>
    /// The rule is Android's: storage is low when the space available to this process is strictly less than
    /// <c>min(StorageLowFraction × volume size, StorageLowBytes)</c>, that is 10% of the volume, but never more than
    /// 500 MiB. Set this to 0 to never report storage as low.
    /// </remarks>
    public long StorageLowBytes { get; set; } = DefaultStorageLowBytes;

    /// <summary>
    /// Gets or sets the fraction of the volume size below which free space is low, capped by
    /// <see cref="StorageLowBytes"/>. Default 0.10 (10%), as on Android.
    /// </summary>
    public double StorageLowFraction { get; set; } = 0.10;

    /// <summary>
    /// Gets or sets how often sources without change notifications are re-read. Default 1 minute.
    /// </summary>
    /// <remarks>
    /// Free storage has no change notification, so it is always re-read on this interval (and whenever
    /// <see cref="LinuxDeviceStateMonitor.Refresh"/> is called). Power supplies are re-read on it only when the kernel's
    /// uevent socket cannot be opened, and the network only when <see cref="System.Net.NetworkInformation.NetworkChange"/>
    /// cannot be subscribed to. <see cref="IdleProvider"/> is polled on it as well.
    /// <see cref="Timeout.InfiniteTimeSpan"/> turns the timer off.
    /// </remarks>
    public TimeSpan FallbackRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets the prefixes of the names of interfaces that are treated as metered. Default <c>ww</c>, <c>usb</c>
    /// and <c>rmnet</c> (cellular modems and USB tethering).
    /// </summary>
    /// <remarks>
    /// Linux has no portable metered flag: only NetworkManager knows (through its D-Bus API, which this monitor does not
    /// use to avoid the dependency). Names are a good proxy: systemd's predictable names give WWAN modems <c>ww…</c>,
    /// Qualcomm modems appear as <c>rmnet…</c> and phones tethering over USB as <c>usb…</c>. Interfaces whose
    /// <c>uevent</c> says <c>DEVTYPE=wwan</c> are metered whatever their name. The network is metered when every
    /// connected interface is metered. Tethering to a phone's Wi-Fi hotspot cannot be recognised this way.
    /// </remarks>
    public IReadOnlyList<string> MeteredInterfacePrefixes { get; set; } = ["ww", "usb", "rmnet"];

    /// <summary>
    /// Gets or sets a function that tells whether the device is idle. Default <see langword="null"/>: never idle.
    /// </summary>
    /// <remarks>
    /// Linux has no portable idle signal: logind's <c>IdleHint</c> is only reachable through its D-Bus API, and
    /// desktop sessions and headless servers disagree about what idle means. Applications that know (a kiosk's input
    /// timeout, a screensaver's state) can supply it here. The function is called on every refresh, including every
    /// <see cref="FallbackRefreshInterval"/>; call <see cref="LinuxDeviceStateMonitor.Refresh"/> to report a change
    /// sooner. It must be cheap and thread-safe; if it throws, the device counts as not idle.
    /// </remarks>
    public Func<bool>? IdleProvider { get; set; }

    /// <summary>
    /// Gets or sets whether to listen for power supply changes on the kernel's uevent netlink socket. Default
    /// <see langword="true"/>.
    /// </summary>
    /// <remarks>
    /// When <see langword="false"/>, or when the socket cannot be opened (some containers and sandboxes forbid it),
    /// power supplies are re-read every <see cref="FallbackRefreshInterval"/> instead.
    /// </remarks>
    public bool UseUeventSocket { get; set; } = true;
}
