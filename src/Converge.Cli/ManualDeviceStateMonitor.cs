using Converge.Work;

namespace Converge.Cli;

/// <summary>A device whose state the demo sets, so it can show work waiting for a constraint and starting when it holds.</summary>
internal sealed class ManualDeviceStateMonitor(DeviceState initial) : IDeviceStateMonitor
{
    private DeviceState _current = initial;

    public DeviceState Current => Volatile.Read(ref _current);

    public event EventHandler<DeviceState>? Changed;

    public void Set(DeviceState state)
    {
        Volatile.Write(ref _current, state);
        Changed?.Invoke(this, state);
    }
}
