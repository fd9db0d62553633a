using System.Reflection;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>
/// The TodoApp sample running as a Converge server and one app per device, each a child process with its own data
/// folder, the way a person runs it; disposing kills them all and deletes the folders.
/// </summary>
/// <remarks>
/// The sample's build output is found through the path the test project's build wrote into this assembly (the
/// project references the sample without referencing its assembly). Each process binds a free port on 127.0.0.1 and
/// prints its URL, then <c>ready</c> once it listens.
/// </remarks>
internal sealed partial class TodoApp : IAsyncDisposable
{
    /// <summary>How long one process may take to print <c>ready</c>: the first start on a busy machine is slow.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    private readonly List<AppProcess> _processes = [];
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("converge-todoapp-");

    private TodoApp()
    {
    }

    /// <summary>The Converge server's base URL.</summary>
    public Uri ServerUrl { get; private set; } = null!;

    /// <summary>Each device's page, by device name.</summary>
    public IReadOnlyDictionary<string, Uri> Devices => _devices;

    private readonly Dictionary<string, Uri> _devices = new(StringComparer.Ordinal);

    /// <summary>Starts the server, then the devices named in <paramref name="devices"/> side by side; returns once all are ready.</summary>
    public static async Task<TodoApp> StartAsync(params string[] devices)
    {
        var (dll, directory) = Locate();
        var app = new TodoApp();
        try
        {
            var server = app.Start("server", dll, directory, "server", "--data", app.Folder("server"), "--urls", "http://127.0.0.1:0");
            app.ServerUrl = new Uri((await server.WaitForLineAsync(ServerLine(), StartTimeout)).Groups["url"].Value);
            await server.WaitForLineAsync(ReadyLine(), StartTimeout);

            await Task.WhenAll(devices.Select(async name =>
            {
                var device = app.Start(
                    $"device {name}", dll, directory,
                    "device", "--name", name, "--server", app.ServerUrl.ToString().TrimEnd('/'), "--data", app.Folder(name), "--urls", "http://127.0.0.1:0");
                var url = new Uri((await device.WaitForLineAsync(DeviceLine(name), StartTimeout)).Groups["url"].Value);
                await device.WaitForLineAsync(ReadyLine(), StartTimeout);
                lock (app._devices)
                {
                    app._devices[name] = url;
                }
            }));
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        try
        {
            _data.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A file still held by a process that took long to die; the folder is under the temp folder.
        }
    }

    private AppProcess Start(string name, string dll, string directory, params string[] args)
    {
        var process = AppProcess.Start(name, dll, directory, args);
        lock (_processes)
        {
            _processes.Add(process);
        }

        return process;
    }

    private string Folder(string name) => Directory.CreateDirectory(Path.Combine(_data.FullName, name)).FullName;

    // The sample's TodoApp.dll, from its own build output, and its project folder, which `dotnet run` would start it in.
    private static (string Dll, string ProjectDirectory) Locate()
    {
        var dll = typeof(TodoApp).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "TodoAppDll")?.Value;
        if (string.IsNullOrEmpty(dll))
        {
            throw new InvalidOperationException(
                "The TodoApp sample was not built with these tests: samples/TodoApp/TodoApp.csproj was missing when they were built.");
        }

        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("The TodoApp sample's build output is missing; build the solution first.", dll);
        }

        var project = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(dll)!, "..", "..", ".."));
        return (dll, File.Exists(Path.Combine(project, "TodoApp.csproj")) ? project : Path.GetDirectoryName(dll)!);
    }

    [GeneratedRegex(@"^server (?<url>http://\S+)\s*$")]
    private static partial Regex ServerLine();

    [GeneratedRegex(@"^ready\s*$")]
    private static partial Regex ReadyLine();

    private static Regex DeviceLine(string name) => new($@"^device {Regex.Escape(name)} (?<url>http://\S+)\s*$");
}
