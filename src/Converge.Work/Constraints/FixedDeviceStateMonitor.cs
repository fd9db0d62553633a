namespace Converge.Work;

/// <summary>A device state that never changes: for servers, and for platforms without a monitor.</summary>
internal sealed class FixedDeviceStateMonitor(DeviceState state) : IDeviceStateMonitor
{
    public DeviceState Current => state;

    public event EventHandler<DeviceState>? Changed
    {
        add { }
        remove { }
    }
}
