using System.Diagnostics;

namespace Converge.Tests.Shared;

/// <summary>Runs a child process the crash tests kill with SIGKILL, and reads its stdout line by line.</summary>
/// <remarks>Compiled into each test project that needs it (a linked file), so the child's dll is found next to the tests.</remarks>
internal sealed class CrashChild : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _seen = [];

    private CrashChild(Process process) => _process = process;

    /// <summary>Starts <paramref name="dllName"/>, built next to the tests, with arguments.</summary>
    public static CrashChild Start(string dllName, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, dllName);
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("The crash child was not built next to the tests.", dll);
        }

        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        return new CrashChild(Process.Start(info)!);
    }

    /// <summary>Returns the first line, read now or before, that starts with <paramref name="prefix"/>; fails if the child exits or takes over a minute.</summary>
    public async Task<string> WaitForLineAsync(string prefix)
    {
        var earlier = _seen.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        if (earlier is not null)
        {
            return earlier;
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(cts.Token);
            if (line is null)
            {
                var error = await _process.StandardError.ReadToEndAsync(cts.Token);
                throw new InvalidOperationException($"The child exited before printing '{prefix}': {error}");
            }

            _seen.Add(line);
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    /// <summary>Kills the child with SIGKILL: no finally blocks, no disposal, no flush.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
        Assert.Equal(137, _process.ExitCode); // 128 + SIGKILL
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.Dispose();
    }
}
