using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Converge.EndToEnd.Tests;

/// <summary>
/// The app in test/Converge.Trimming.App, published trimmed and as native AOT, then run: a server, two devices with live
/// sync, a Manual conflict resolved by hand and the background sync, as apps published that way use them.
/// </summary>
/// <remarks>
/// Each test publishes once, with no warning allowed, into a temp folder with its own build output, so the working
/// tree's bin and obj folders are left alone. The tests run on their own, after the other tests of this assembly: a
/// publish keeps both cores busy for a minute or more.
/// </remarks>
[Collection(PublishedAppCollection.Name)]
public sealed partial class PublishedAppTests(PublishedAppTests.Workspace workspace, ITestOutputHelper output) : IClassFixture<PublishedAppTests.Workspace>
{
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    [Theory]
    [MemberData(nameof(PackageReferenceTests.Libraries), MemberType = typeof(PackageReferenceTests))]
    public void A_shipped_library_is_marked_trimmable(string project)
    {
        // The SDK stamps the assembly when the project sets IsTrimmable, so the trimmer analyses it in every app.
        var metadata = Assembly.Load(project).GetCustomAttributes<AssemblyMetadataAttribute>();
        Assert.Contains(metadata, m => m.Key == "IsTrimmable" && m.Value == "True");
    }

    [Fact]
    public async Task A_trimmed_app_syncs_live_resolves_a_conflict_and_runs_the_background_sync()
    {
        var app = await workspace.PublishAsync("trimmed", output, "--self-contained", "-p:PublishTrimmed=true");

        var line = await RunAsync(app);

        Assert.Contains("reflection JSON: no", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_native_AOT_app_syncs_live_resolves_a_conflict_and_runs_the_background_sync()
    {
        var app = await workspace.PublishAsync("aot", output, ["-p:PublishAot=true", .. NativeCompilerArguments()]);

        var line = await RunAsync(app);

        Assert.Contains("dynamic code: no", line, StringComparison.Ordinal);
    }

    /// <summary>Runs the published app and returns its OK line; fails with everything it printed otherwise.</summary>
    private async Task<string> RunAsync(string app)
    {
        var (exitCode, text) = await Workspace.RunProcessAsync(app, [], RunTimeout, $"The published app {app}");
        output.WriteLine(text);
        var ok = text.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith("OK ", StringComparison.Ordinal));
        Assert.True(exitCode == 0 && ok is not null, $"The published app {app} exited with {exitCode} and no OK line:\n{text}");
        return ok!;
    }

    /// <summary>Native AOT compiles and links with clang; Debian installs it as clang-N only, unless the clang package is there.</summary>
    private static string[] NativeCompilerArguments()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        if (path.Any(dir => File.Exists(Path.Combine(dir, "clang"))))
        {
            return [];
        }

        var versioned = path.Where(Directory.Exists)
            .SelectMany(dir => Directory.EnumerateFiles(dir, "clang-*"))
            .Select(Path.GetFileName)
            .Where(name => VersionedClang().IsMatch(name!))
            .OrderByDescending(name => int.Parse(name!["clang-".Length..], System.Globalization.CultureInfo.InvariantCulture))
            .FirstOrDefault();
        Assert.True(versioned is not null, "Native AOT needs clang on the PATH: install it (Debian: apt-get install clang); scripts/test.sh does when it runs as root.");
        return [$"-p:CppCompilerAndLinker={versioned}"];
    }

    [GeneratedRegex(@"^clang-[0-9]+$")]
    private static partial Regex VersionedClang();

    /// <summary>A temp folder for the publishes: one build output shared by both, and a folder for each published app.</summary>
    public sealed partial class Workspace : IDisposable
    {
        private readonly string _folder = Directory.CreateTempSubdirectory("converge-publish-").FullName;

        /// <summary>Publishes the app for linux-x64 in Release with the given arguments; fails on any warning.</summary>
        /// <returns>The path of the published executable.</returns>
        public async Task<string> PublishAsync(string name, ITestOutputHelper output, params string[] arguments)
        {
            var project = Path.Combine(LogEventIdTests.RepositoryRoot(), "test", "Converge.Trimming.App", "Converge.Trimming.App.csproj");
            var published = Path.Combine(_folder, name);
            string[] all =
            [
                "publish", project, "-c", "Release", "-r", "linux-x64", "-o", published,
                "--artifacts-path", Path.Combine(_folder, "artifacts"), "--nologo", "-nodeReuse:false", .. arguments,
            ];
            var description = $"dotnet {string.Join(' ', all)}";
            var started = Stopwatch.StartNew();
            var (exitCode, text) = await RunProcessAsync("dotnet", all, PublishTimeout, description);
            var executable = Path.Combine(published, "Converge.Trimming.App");
            output.WriteLine($"{description}: {started.Elapsed.TotalSeconds:F0} s");

            Assert.True(exitCode == 0, $"{description} exited with {exitCode}:\n{text}");
            var warnings = text.Split('\n').Select(l => l.Trim()).Where(l => Warning().IsMatch(l)).Distinct().ToList();
            Assert.True(warnings.Count == 0, $"{description} gave {warnings.Count} warnings:\n{string.Join('\n', warnings)}");
            Assert.True(File.Exists(executable), $"{description} made no {executable}:\n{text}");
            var folderSize = new DirectoryInfo(published).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
            output.WriteLine($"{executable}: {Mib(new FileInfo(executable).Length)} MiB, the whole folder {Mib(folderSize)} MiB");
            return executable;
        }

        private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

        /// <summary>Runs a process to its end or the timeout, and returns its exit code and everything it printed.</summary>
        internal static async Task<(int ExitCode, string Output)> RunProcessAsync(string file, string[] arguments, TimeSpan timeout, string description)
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in arguments)
            {
                info.ArgumentList.Add(argument);
            }

            // The test host's MSBuild settings belong to the build that started it, not to this one.
            foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                info.Environment.Remove(key);
            }

            using var process = Process.Start(info)!;
            var text = new StringBuilder();
            var lines = new object();
            process.OutputDataReceived += (_, e) => Append(e.Data);
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                Assert.Fail($"{description} did not finish within {timeout.TotalMinutes} minutes:\n{text}");
            }

            // The exit is seen before the last lines are read; this waits for them.
            process.WaitForExit();
            lock (lines)
            {
                return (process.ExitCode, text.ToString());
            }

            void Append(string? line)
            {
                if (line is not null)
                {
                    lock (lines)
                    {
                        text.AppendLine(line);
                    }
                }
            }
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        /// <summary>A warning of the compiler, NuGet, the SDK, the trimmer or the AOT compiler, such as "warning IL2026:".</summary>
        [GeneratedRegex(@"\bwarning [A-Z]+[0-9]+\b")]
        private static partial Regex Warning();
    }
}

/// <summary>The publishing tests: they run alone, after this assembly's other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PublishedAppCollection
{
    public const string Name = "Published apps";
}
