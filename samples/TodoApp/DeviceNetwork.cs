using Converge.Client;
using Converge.Work;

namespace TodoApp;

/// <summary>The device's network as the app sees it: the "Offline" switch stands for a lost network.</summary>
/// <remarks>
/// It is the device-state monitor of Converge.Work, so background sync (which needs a network) waits while offline,
/// and it stops the client's live connection and starts it again when the network comes back. A real app feeds the
/// same two places from the platform (MAUI's <c>Connectivity.ConnectivityChanged</c>, say).
/// </remarks>
internal sealed class DeviceNetwork(ConvergeClient client) : IDeviceStateMonitor
{
    private readonly Lock _lock = new();
    private DeviceState _state = DeviceState.Unconstrained;

    public DeviceState Current
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    public bool IsOffline => !Current.Network.IsConnected;

    public event EventHandler<DeviceState>? Changed;

    public async Task SetOfflineAsync(bool offline)
    {
        DeviceState state;
        lock (_lock)
        {
            if (_state.Network.IsConnected == !offline)
            {
                return;
            }

            _state = _state with { Network = offline ? NetworkState.Disconnected : NetworkState.Unmetered };
            state = _state;
        }

        if (offline)
        {
            await client.Live.StopAsync();
        }
        else
        {
            client.Live.Start();
        }

        Changed?.Invoke(this, state);
    }
}
