using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>The browser itself, before any app: the fixture starts the machine's Chromium without reaching the network.</summary>
[Collection(BrowserCollection.Name)]
public sealed class BrowserTests(Chromium chromium)
{
    [Fact]
    public async Task The_browser_starts_offline_from_the_machines_chromium()
    {
        var page = await chromium.NewPageAsync(Viewports.Desktop);
        await page.GotoAsync("about:blank");
        Assert.Equal(2, await page.EvaluateAsync<int>("() => 1 + 1"));

        // The browser Playwright drives is the one installed at /usr/bin/chromium, not a build of Playwright's own.
        Assert.Equal(await InstalledVersionAsync(), chromium.Browser.Version);
        await page.Context.CloseAsync();
    }

    private static async Task<string> InstalledVersionAsync()
    {
        var info = new ProcessStartInfo(Chromium.ExecutablePath, "--version") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        var version = Regex.Match(output, @"\d+(\.\d+){3}");
        Assert.True(version.Success, $"No version in '{output}'.");
        return version.Value;
    }
}
