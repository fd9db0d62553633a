using TodoApp;

// A local-first todo app in which each running host is one device with its own Converge store.
//   dotnet run --project samples/TodoApp -- --devices phone,laptop   a server and two devices, in this process
//   dotnet run --project samples/TodoApp -- server --data DIR [--urls URL]
//   dotnet run --project samples/TodoApp -- device --name phone --server URL --data DIR [--urls URL]
// Each prints its URL ("server http://…", "device phone http://…") and "ready" once everything listens.
var options = LaunchOptions.Parse(args);
if (options.Error is { } error)
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine(LaunchOptions.Usage);
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM,
    context =>
    {
        context.Cancel = true;
        stop.Cancel();
    });

var hosts = new List<IAsyncDisposable>();
try
{
    var dataRoot = options.Data ?? Directory.CreateTempSubdirectory("converge-todoapp-").FullName;
    Uri? server = options.Server;
    if (options.Mode is LaunchMode.Server or LaunchMode.Devices)
    {
        var url = options.Urls ?? Url(options.PortBase, 0);
        var host = await ServerHost.StartAsync(Path.Combine(dataRoot, options.Mode == LaunchMode.Server ? "" : "server"), url);
        hosts.Add(host);
        server = host.Address;
        Console.WriteLine($"server {host.Address.ToString().TrimEnd('/')}");
    }

    var devices = options.Mode switch
    {
        LaunchMode.Device => [options.Name!],
        LaunchMode.Devices => options.Devices,
        _ => [],
    };
    for (var i = 0; i < devices.Count; i++)
    {
        var folder = options.Mode == LaunchMode.Device ? dataRoot : Path.Combine(dataRoot, devices[i]);
        var url = options.Mode == LaunchMode.Device ? options.Urls ?? Url(options.PortBase, 0) : Url(options.PortBase, i + 1);
        var device = await DeviceHost.StartAsync(devices[i], server!, folder, url);
        hosts.Add(device);
        Console.WriteLine($"device {devices[i]} {device.Address.ToString().TrimEnd('/')}");
    }

    Console.WriteLine("ready");
    try
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }

    return 0;
}
finally
{
    // Devices first, so their last pushes can reach the server.
    for (var i = hosts.Count - 1; i >= 0; i--)
    {
        await hosts[i].DisposeAsync();
    }
}

static string Url(int? portBase, int offset) => $"http://127.0.0.1:{(portBase is { } p ? p + offset : 0)}";
