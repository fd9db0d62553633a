using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Converge.Cli.Tests;

/// <summary>Runs the converge command built next to the tests, as a child process.</summary>
internal static class Converge
{
    private static string Dll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "converge.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("The converge command was not built next to the tests.", dll);
        }
    }

    /// <summary>Runs a command to its end; fails if it takes over two minutes.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var process = Process.Start(Info(args))!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }

    /// <summary>Starts a long-running command, such as serve.</summary>
    public static Process Start(params string[] args) => Process.Start(Info(args))!;

    /// <summary>A port nobody listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static ProcessStartInfo Info(string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NO_COLOR"] = "1";
        info.Environment["COLUMNS"] = "200";
        return info;
    }
}
