using System.ComponentModel;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Converge.Work;

/// <summary>A <c>NETLINK_KOBJECT_UEVENT</c> socket subscribed to the kernel's device event broadcasts.</summary>
/// <remarks>
/// <para>
/// .NET's <see cref="AddressFamily"/> has no netlink member (its value 16 is AppleTalk, which the runtime refuses on
/// Linux), so the socket is created with <c>socket(2)</c> and wrapped in a <see cref="SafeSocketHandle"/>; from then
/// on <see cref="Socket"/> handles it, including asynchronous receives on the runtime's epoll thread.
/// </para>
/// <para>
/// Each datagram is one event: <c>ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0…</c>. Only the kernel (and root in the
/// initial namespace) can send to the kernel group, and the monitor only re-reads sysfs on a message anyway, so a
/// spoofed message could cost a few file reads at most.
/// </para>
/// </remarks>
internal sealed class UeventSocket : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRaw = 3;
    private const int SockCloexec = 0x80000;
    private const int NetlinkKobjectUevent = 15;
    private const uint KernelEventsGroup = 1;

    private readonly Socket _socket;

    private UeventSocket(Socket socket) => _socket = socket;

    /// <summary>Opens the socket and joins the kernel's uevent multicast group.</summary>
    /// <returns>The open socket.</returns>
    /// <exception cref="PlatformNotSupportedException">Not running on Linux.</exception>
    /// <exception cref="Win32Exception">The socket could not be created.</exception>
    /// <exception cref="SocketException">The socket could not be bound.</exception>
    public static UeventSocket Open()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Uevent sockets exist only on Linux.");
        }

        var fd = NativeMethods.socket(AfNetlink, SockRaw | SockCloexec, NetlinkKobjectUevent);
        if (fd < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError());
        }

        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        Socket? socket = null;
        try
        {
            socket = new Socket(handle);
            socket.Bind(new NetlinkEndPoint(KernelEventsGroup));
            return new UeventSocket(socket);
        }
        catch
        {
            if (socket is null)
            {
                handle.Dispose();
            }
            else
            {
                socket.Dispose();
            }

            throw;
        }
    }

    /// <summary>Receives the next event.</summary>
    /// <param name="buffer">Where to put it; 8 KiB holds any uevent (the kernel caps them at 2 KiB of variables).</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The number of bytes received.</returns>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);

    /// <summary>Tells whether a uevent message is about a power supply.</summary>
    /// <param name="message">The datagram.</param>
    /// <returns>Whether one of its variables is <c>SUBSYSTEM=power_supply</c>.</returns>
    public static bool IsPowerSupplyEvent(ReadOnlySpan<byte> message)
    {
        ReadOnlySpan<byte> wanted = "SUBSYSTEM=power_supply"u8;
        foreach (var range in message.Split((byte)0))
        {
            if (message[range].SequenceEqual(wanted))
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc/>
    public void Dispose() => _socket.Dispose();

    /// <summary>A <c>sockaddr_nl</c>: family, padding, port id (0 lets the kernel choose) and multicast groups.</summary>
    private sealed class NetlinkEndPoint(uint groups) : EndPoint
    {
        private const int Size = 12;

        public override AddressFamily AddressFamily => AddressFamily.Unknown;

        public override SocketAddress Serialize()
        {
            // Start from an unspecified address (family 0, which the runtime accepts) and write the fields in host order.
            var address = new SocketAddress(AddressFamily.Unspecified, Size);
            var bytes = address.Buffer.Span;
            bytes.Clear();
            MemoryMarshal.Write(bytes, (ushort)AfNetlink);
            MemoryMarshal.Write(bytes[8..], groups);
            return address;
        }

        public override EndPoint Create(SocketAddress socketAddress)
        {
            var bytes = socketAddress.Buffer.Span;
            return new NetlinkEndPoint(bytes.Length >= Size ? MemoryMarshal.Read<uint>(bytes[8..]) : 0);
        }

        public override string ToString() => $"netlink:groups={groups}";
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        internal static extern int socket(int domain, int type, int protocol);
    }
}
