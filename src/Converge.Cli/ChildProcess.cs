using System.Diagnostics;

namespace Converge.Cli;

/// <summary>Starts this same program as a child process, and reads its output line by line.</summary>
/// <remarks>The demo and the benchmarks (bench/Converge.Benchmarks, which compiles this file too) start their child processes with it.</remarks>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _seen = [];

    private ChildProcess(Process process) => _process = process;

    public int Id => _process.Id;

    public Process Process => _process;

    public static ChildProcess StartSelf(params string[] args)
    {
        var (file, prefix) = SelfCommand();
        return new ChildProcess(Process.Start(StartInfo(file, prefix.Concat(args))) ?? throw new InvalidOperationException($"Could not start {file}."));
    }

    /// <summary>A start for a child whose output this process reads.</summary>
    public static ProcessStartInfo StartInfo(string file, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        return info;
    }

    /// <summary>The command that runs this program: its apphost, or `dotnet` and its dll when started through dotnet.</summary>
    public static (string File, string[] Prefix) SelfCommand()
    {
        var processPath = Environment.ProcessPath ?? "dotnet";
        var name = Path.GetFileNameWithoutExtension(processPath);
        return string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase)
            ? (processPath, [typeof(ChildProcess).Assembly.Location])
            : (processPath, []);
    }

    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        var earlier = _seen.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        if (earlier is not null)
        {
            return earlier;
        }

        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(cts.Token).ConfigureAwait(false);
            if (line is null)
            {
                var error = await _process.StandardError.ReadToEndAsync(cts.Token).ConfigureAwait(false);
                throw new InvalidOperationException($"The child process exited before printing '{prefix}'. {error}");
            }

            _seen.Add(line);
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    public async Task<string> ReadToEndAsync(CancellationToken ct) => await _process.StandardOutput.ReadToEndAsync(ct).ConfigureAwait(false);

    /// <summary>SIGKILL: the process gets no chance to clean up.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
    }
}
