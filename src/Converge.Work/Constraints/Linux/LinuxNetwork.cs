using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Converge.Work;

/// <summary>Derives a <see cref="NetworkState"/> from the machine's network interfaces.</summary>
internal static class LinuxNetwork
{
    /// <summary>Reads the interfaces now.</summary>
    /// <param name="options">The metered prefixes and the sysfs network folder.</param>
    /// <returns>
    /// Connected when an interface other than loopback or a tunnel is up and has a unicast address that is neither
    /// loopback nor link-local; metered when every such interface is metered (see
    /// <see cref="LinuxDeviceStateMonitorOptions.MeteredInterfacePrefixes"/>); never roaming, because Linux exposes
    /// roaming only through ModemManager's D-Bus API.
    /// </returns>
    /// <exception cref="NetworkInformationException">The interfaces could not be listed.</exception>
    public static NetworkState Read(LinuxDeviceStateMonitorOptions options)
    {
        var connected = false;
        var allMetered = true;
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (!IsConnected(nic, options))
            {
                continue;
            }

            connected = true;
            if (!IsMeteredInterface(nic.Name, ReadSysfs(options, nic.Name, "uevent"), options.MeteredInterfacePrefixes))
            {
                allMetered = false;
            }
        }

        return connected ? new NetworkState(IsConnected: true, IsMetered: allMetered, IsRoaming: false) : NetworkState.Disconnected;
    }

    /// <summary>Tells whether an interface is metered, by its name or its kernel device type.</summary>
    /// <param name="name">The interface name.</param>
    /// <param name="uevent">The contents of its sysfs <c>uevent</c> file, if known.</param>
    /// <param name="meteredPrefixes">The name prefixes of metered interfaces.</param>
    /// <returns>Whether the name starts with a prefix, or the device type is <c>wwan</c>.</returns>
    public static bool IsMeteredInterface(string name, string? uevent, IReadOnlyList<string> meteredPrefixes)
    {
        foreach (var prefix in meteredPrefixes)
        {
            if (!string.IsNullOrEmpty(prefix) && name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        if (uevent is not null)
        {
            foreach (var line in uevent.AsSpan().EnumerateLines())
            {
                if (line.Trim().Equals("DEVTYPE=wwan", StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Tells whether an address can carry traffic beyond the local link.</summary>
    /// <param name="address">The address.</param>
    /// <returns>Whether it is neither loopback nor link-local (169.254.0.0/16, fe80::/10).</returns>
    public static bool IsRoutableUnicast(IPAddress address)
    {
        if (IPAddress.IsLoopback(address))
        {
            return false;
        }

        return address.AddressFamily switch
        {
            AddressFamily.InterNetwork => !IsIPv4LinkLocal(address),
            AddressFamily.InterNetworkV6 => !address.IsIPv6LinkLocal && !address.IsIPv6Multicast &&
                                            !(address.IsIPv4MappedToIPv6 && IsIPv4LinkLocal(address.MapToIPv4())),
            _ => false,
        };
    }

    private static bool IsIPv4LinkLocal(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[4];
        return address.TryWriteBytes(bytes, out _) && bytes[0] == 169 && bytes[1] == 254;
    }

    private static bool IsConnected(NetworkInterface nic, LinuxDeviceStateMonitorOptions options)
    {
        if (nic.NetworkInterfaceType is NetworkInterfaceType.Loopback or NetworkInterfaceType.Tunnel)
        {
            return false;
        }

        var up = nic.OperationalStatus switch
        {
            OperationalStatus.Up => true,

            // Point-to-point links (WireGuard, tun, PPP) have no link layer to report on and say "unknown" while they
            // carry traffic; the carrier attribute tells whether they are really usable.
            OperationalStatus.Unknown => ReadSysfs(options, nic.Name, "carrier")?.Trim() == "1",
            _ => false,
        };

        if (!up)
        {
            return false;
        }

        foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
        {
            if (IsRoutableUnicast(unicast.Address))
            {
                return true;
            }
        }

        return false;
    }

    private static string? ReadSysfs(LinuxDeviceStateMonitorOptions options, string interfaceName, string attribute)
    {
        if (interfaceName.Contains('/', StringComparison.Ordinal) || interfaceName is "." or "..")
        {
            return null;
        }

        try
        {
            return File.ReadAllText(Path.Combine(options.NetworkInterfacesPath, interfaceName, attribute));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not Linux, no sysfs, or an attribute the interface cannot answer (carrier of a down interface is EINVAL).
            return null;
        }
    }
}
