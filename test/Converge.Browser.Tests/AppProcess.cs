using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>One process of the sample (the server or a device), whose output is read as it comes so it never blocks on a full pipe.</summary>
internal sealed class AppProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly List<string> _lines = [];
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Found)> _waiters = [];
    private readonly Task _exited;

    private AppProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data is null ? null : "stderr: " + e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _exited = FailWaitersOnExitAsync();
    }

    /// <summary>What the process is, for messages: "server", "device phone".</summary>
    public string Name { get; }

    /// <summary>Starts <c>dotnet DLL ARGS</c> in <paramref name="workingDirectory"/>, as <c>dotnet run</c> would start the app.</summary>
    public static AppProcess Start(string name, string dll, string workingDirectory, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        // Development, as under `dotnet run`: the app then serves the static web assets of its build output (the
        // components' styles and scripts), which only a published app has in its own wwwroot.
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        info.Environment["DOTNET_ENVIRONMENT"] = "Development";
        info.Environment["NO_COLOR"] = "1";
        return new AppProcess(name, new Process { StartInfo = info });
    }

    /// <summary>Waits for the first line, printed now or before, that matches <paramref name="pattern"/>; fails if the process exits or the time runs out.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        TaskCompletionSource<Match> found;
        lock (_gate)
        {
            foreach (var line in _lines)
            {
                var match = pattern.Match(line);
                if (match.Success)
                {
                    return match;
                }
            }

            if (_exited.IsCompleted)
            {
                throw new InvalidOperationException($"The {Name} process exited before printing a line like '{pattern}'.{Output()}");
            }

            found = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((pattern, found));
        }

        try
        {
            return await found.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            lock (_gate)
            {
                throw new TimeoutException($"The {Name} process printed no line like '{pattern}' within {timeout.TotalSeconds} s.{Output()}");
            }
        }
    }

    /// <summary>Kills the process and everything it started, and waits for it to end.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _exited.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            _process.Dispose();
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _lines.Add(line);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var match = _waiters[i].Pattern.Match(line);
                if (match.Success)
                {
                    _waiters[i].Found.TrySetResult(match);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    private async Task FailWaitersOnExitAsync()
    {
        // Waits for the end of both streams too, so the failure message holds the last lines.
        await _process.WaitForExitAsync();
        lock (_gate)
        {
            foreach (var (pattern, found) in _waiters)
            {
                found.TrySetException(new InvalidOperationException(
                    $"The {Name} process exited with code {_process.ExitCode} before printing a line like '{pattern}'.{Output()}"));
            }

            _waiters.Clear();
        }
    }

    // The last lines the process printed, for a failure message. Called under _gate.
    private string Output() => _lines.Count == 0
        ? " It printed nothing."
        : $" Its last lines:{Environment.NewLine}{string.Join(Environment.NewLine, _lines.TakeLast(40))}";
}
