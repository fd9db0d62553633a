using System.Diagnostics;
using System.Text.Json.Nodes;
using Converge.Cli;

namespace Converge.Benchmarks;

/// <summary>Runs bench/Converge.Bench.Peers (Quartz.NET and Hangfire on SQLite) as child processes, same machine, same run.</summary>
internal sealed class PeerHarness(string project)
{
    private string? _dll;

    /// <summary>Finds the peer harness project above the working directory or the program's folder.</summary>
    public static PeerHarness? Locate()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "bench", "Converge.Bench.Peers", "Converge.Bench.Peers.csproj");
                if (File.Exists(candidate))
                {
                    return new PeerHarness(candidate);
                }
            }
        }

        return null;
    }

    public async Task<JsonObject?> RunAsync(string peer, string mode, int n, int workers, CancellationToken ct)
    {
        var dll = await BuildAsync(ct);
        var directory = Directory.CreateTempSubdirectory("converge-peer-").FullName;
        try
        {
            var info = ChildProcess.StartInfo("dotnet", [dll, peer, mode, "--n", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "--workers", workers.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dir", directory]);

            if (mode == "throughput")
            {
                // Each peer runs in a fresh process: a warm-up round there matches Converge's own warm-up.
                info.ArgumentList.Add("--warmup");
                info.ArgumentList.Add("1000");
            }

            using var process = Process.Start(info)!;
            var stderr = process.StandardError.ReadToEndAsync(ct);
            var stdout = await process.StandardOutput.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct);
            var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
            if (process.ExitCode != 0 || line is null)
            {
                Console.Error.WriteLine($"{peer} {mode} failed (exit {process.ExitCode}): {await stderr}");
                return null;
            }

            return JsonNode.Parse(line)?.AsObject();
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private async Task<string> BuildAsync(CancellationToken ct)
    {
        if (_dll is not null)
        {
            return _dll;
        }

        var info = ChildProcess.StartInfo("dotnet", ["build", project, "-c", "Release", "--nologo", "-v", "quiet"]);

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"Building the peer harness failed: {output}");
        }

        _dll = Path.Combine(Path.GetDirectoryName(project)!, "bin", "Release", "net10.0", "Converge.Bench.Peers.dll");
        return _dll;
    }
}
