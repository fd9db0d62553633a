namespace Converge.Browser.Tests;

/// <summary>Saves PNG screenshots of the pages a test drives, and refreshes the documentation's images when asked.</summary>
/// <remarks>
/// Every screenshot goes to TestResults/screenshots under the tests' output folder. The ones the documentation shows are
/// also copied to docs/images, but only when CONVERGE_UPDATE_SCREENSHOTS=1 is set, so a CI run never rewrites the docs.
/// </remarks>
internal static class Screenshots
{
    /// <summary>The environment variable that lets a run update docs/images.</summary>
    public const string UpdateVariable = "CONVERGE_UPDATE_SCREENSHOTS";

    /// <summary>The folder every screenshot of this run goes to.</summary>
    public static string Folder { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    /// <summary>Saves the whole page as <paramref name="name"/>.png; with <paramref name="forDocs"/>, docs/images gets a copy when updating is on.</summary>
    public static async Task SaveAsync(IPage page, string name, bool forDocs = false)
    {
        Directory.CreateDirectory(Folder);
        var path = Path.Combine(Folder, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        if (forDocs && Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            var images = Path.Combine(RepositoryRoot(), "docs", "images");
            Directory.CreateDirectory(images);
            File.Copy(path, Path.Combine(images, name + ".png"), overwrite: true);
        }
    }

    /// <summary>Saves the page at phone width too, then puts the window back to the size it had.</summary>
    public static async Task SaveAtPhoneWidthAsync(IPage page, string name, bool forDocs = false)
    {
        var size = page.ViewportSize;
        await page.SetViewportSizeAsync(Viewports.Phone.Width, Viewports.Phone.Height);
        await SaveAsync(page, name, forDocs);
        if (size is not null)
        {
            await page.SetViewportSizeAsync(size.Width, size.Height);
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Converge.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Converge.slnx above {AppContext.BaseDirectory}: {UpdateVariable}=1 needs the tests run from the repository.");
    }
}
