namespace Converge.Browser.Tests;

/// <summary>
/// Tests of the sample running as a server and two devices, each its own process with its own store: "phone" open at a
/// phone's width and "laptop" at a desktop's, each page in a browser context of its own. Every test starts them afresh.
/// </summary>
/// <param name="chromium">The shared browser.</param>
public abstract class TwoDeviceTests(Chromium chromium) : IAsyncLifetime
{
    /// <summary>Gets the running sample.</summary>
    private protected TodoApp App { get; private set; } = null!;

    /// <summary>Gets the phone's page.</summary>
    private protected DevicePage Phone { get; private set; } = null!;

    /// <summary>Gets the laptop's page.</summary>
    private protected DevicePage Laptop { get; private set; } = null!;

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        App = await TodoApp.StartAsync("phone", "laptop");
        Phone = await DevicePage.OpenAsync(chromium, App, "phone", Viewports.Phone);
        Laptop = await DevicePage.OpenAsync(chromium, App, "laptop", Viewports.Desktop);
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var device in new[] { Phone, Laptop })
        {
            if (device is not null)
            {
                await device.Page.Context.CloseAsync();
            }
        }

        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}
