using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>Log messages of <see cref="LinuxDeviceStateMonitor"/> (event ids 2100-2199).</summary>
internal static partial class LinuxDeviceStateMonitorLog
{
    [LoggerMessage(EventId = 1050, Level = LogLevel.Information, Message = "Device state changed to {State}")]
    public static partial void StateChanged(ILogger logger, DeviceState state);

    [LoggerMessage(EventId = 1051, Level = LogLevel.Debug, Message = "Initial device state is {State}")]
    public static partial void InitialState(ILogger logger, DeviceState state);

    [LoggerMessage(EventId = 1052, Level = LogLevel.Information,
        Message = "Uevent socket unavailable, falling back to refreshing power supplies every {Interval}: {Reason}")]
    public static partial void UeventSocketUnavailable(ILogger logger, TimeSpan interval, string reason);

    [LoggerMessage(EventId = 1053, Level = LogLevel.Debug,
        Message = "Uevent socket disabled by configuration, refreshing power supplies every {Interval}")]
    public static partial void UeventSocketDisabled(ILogger logger, TimeSpan interval);

    [LoggerMessage(EventId = 1054, Level = LogLevel.Debug, Message = "Listening for power supply uevents")]
    public static partial void UeventListening(ILogger logger);

    [LoggerMessage(EventId = 1055, Level = LogLevel.Warning,
        Message = "Uevent listener failed, falling back to refreshing power supplies every {Interval}")]
    public static partial void UeventListenerFailed(ILogger logger, TimeSpan interval, Exception exception);

    [LoggerMessage(EventId = 1056, Level = LogLevel.Warning,
        Message = "Network change notifications unavailable, falling back to refreshing the network every {Interval}")]
    public static partial void NetworkChangeUnavailable(ILogger logger, TimeSpan interval, Exception exception);

    [LoggerMessage(EventId = 1057, Level = LogLevel.Warning, Message = "Could not read the network interfaces")]
    public static partial void NetworkReadFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1058, Level = LogLevel.Warning, Message = "Could not read the power supplies in {Path}")]
    public static partial void PowerReadFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 1059, Level = LogLevel.Warning, Message = "Could not read the free space of {Path}")]
    public static partial void StorageReadFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 1060, Level = LogLevel.Warning, Message = "The idle provider threw; the device counts as not idle")]
    public static partial void IdleProviderFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1061, Level = LogLevel.Error, Message = "A device state Changed handler threw")]
    public static partial void ChangedHandlerFailed(ILogger logger, Exception exception);
}
