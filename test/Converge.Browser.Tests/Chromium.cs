namespace Converge.Browser.Tests;

/// <summary>One headless Chromium for every test of the <see cref="BrowserCollection"/>: the machine's own build, never a downloaded one.</summary>
/// <remarks>
/// Machines here have no internet, and neither do many CI runners, so Playwright drives Debian's <c>chromium</c> package
/// (scripts/test.sh installs it with apt when it is missing). When it is missing all the same, every test fails with
/// a message naming what to install: a browser test that cannot run must not pass silently.
/// </remarks>
public sealed class Chromium : IAsyncLifetime
{
    /// <summary>Where Debian's chromium package puts the browser.</summary>
    public const string ExecutablePath = "/usr/bin/chromium";

    /// <summary>How long an expectation waits for the page: generous, since a sync crosses three processes on a busy machine.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private Exception? _failure;

    /// <summary>The running browser; throws the reason it could not start.</summary>
    public IBrowser Browser => _browser ?? throw new InvalidOperationException(
        _failure is null ? "The browser has not started." : $"Chromium could not start: {_failure.Message}", _failure);

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            _failure = new FileNotFoundException(
                $"{ExecutablePath} is missing. Install Debian's Chromium (apt-get install chromium); scripts/test.sh does it when run as root.",
                ExecutablePath);
            return;
        }

        // Playwright would otherwise look for (and offer to download) its own browser builds; this one never needs them.
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        Assertions.SetDefaultExpectTimeout((float)Timeout.TotalMilliseconds);
        try
        {
            _playwright = await Playwright.CreateAsync();
            _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Timeout = (float)TimeSpan.FromMinutes(1).TotalMilliseconds,
            });
        }
        catch (PlaywrightException e)
        {
            _failure = e;
        }
    }

    /// <summary>Opens a page in a context of its own (no cookies or storage shared), at a desktop or phone size.</summary>
    public async Task<IPage> NewPageAsync(ViewportSize viewport)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = viewport });
        context.SetDefaultTimeout((float)Timeout.TotalMilliseconds);
        return await context.NewPageAsync();
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.CloseAsync();
        }

        _playwright?.Dispose();
    }
}

/// <summary>The tests that share one <see cref="Chromium"/>; they run one after another, which also suits a small machine.</summary>
[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<Chromium>
{
    public const string Name = "Browser";
}

/// <summary>The two window sizes the screenshots and layouts are checked at.</summary>
internal static class Viewports
{
    public static ViewportSize Desktop => new() { Width = 1280, Height = 800 };

    public static ViewportSize Phone => new() { Width = 390, Height = 844 };
}
