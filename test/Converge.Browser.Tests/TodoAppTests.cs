namespace Converge.Browser.Tests;

/// <summary>
/// The TodoApp sample end to end in a real browser: a Converge server and two devices, "phone" at a phone's width and
/// "laptop" at a desktop's, each its own process with its own store. Every wait is an auto-waiting expectation.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class TodoAppTests(Chromium chromium) : IAsyncLifetime
{
    private TodoApp _app = null!;
    private DevicePage _phone = null!;
    private DevicePage _laptop = null!;

    public async Task InitializeAsync()
    {
        _app = await TodoApp.StartAsync("phone", "laptop");
        _phone = await DevicePage.OpenAsync(chromium, _app, "phone", Viewports.Phone);
        _laptop = await DevicePage.OpenAsync(chromium, _app, "laptop", Viewports.Desktop);
    }

    public async Task DisposeAsync()
    {
        foreach (var device in new[] { _phone, _laptop })
        {
            if (device is not null)
            {
                await device.Page.Context.CloseAsync();
            }
        }

        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_todo_added_on_one_device_appears_on_the_other_without_a_reload()
    {
        // A mark only this load of the page holds: a reload would lose it.
        await _laptop.Page.EvaluateAsync("() => { window.convergeSamePage = true; }");

        await _phone.AddTodoAsync("Buy milk");

        await Expect(_laptop.Todo("Buy milk")).ToBeVisibleAsync();
        await Expect(_laptop.Todo("Buy milk")).Not.ToBeCheckedAsync();
        Assert.True(await _laptop.Page.EvaluateAsync<bool>("() => window.convergeSamePage === true"), "The laptop's page was reloaded.");

        // Done on the laptop shows on the phone the same way.
        await _laptop.Todo("Buy milk").CheckAsync();
        await Expect(_phone.Todo("Buy milk")).ToBeCheckedAsync();

        await Screenshots.SaveAsync(_phone.Page, "todoapp-phone", forDocs: true);
        await Screenshots.SaveAsync(_laptop.Page, "todoapp-desktop", forDocs: true);
    }

    [Fact]
    public async Task The_sync_status_shows_offline_then_live_then_up_to_date_as_the_switch_flips()
    {
        await _phone.WaitUpToDateAsync();

        // The status's two words, the connection's and the data's, each time they change, recorded in the page: a state
        // that lasts a moment is seen too.
        await _phone.SyncStatus.EvaluateAsync("""
            status => {
                window.convergeStates = [];
                const record = () => {
                    const connection = status.querySelector('.converge-status__connection')?.textContent ?? '';
                    const data = status.querySelector('.converge-status__state')?.textContent ?? '';
                    const word = [connection, data].filter(w => w).join(' · ');
                    if (word && window.convergeStates.at(-1) !== word) window.convergeStates.push(word);
                };
                new MutationObserver(record).observe(status, { subtree: true, childList: true, characterData: true });
                record();
            }
            """);

        await _phone.OfflineSwitch.CheckAsync();
        await Expect(_phone.OfflineSwitch).ToBeCheckedAsync();
        await Expect(_phone.SyncStatus).ToContainTextAsync("Offline");
        await Screenshots.SaveAsync(_phone.Page, "sync-status-offline");

        await _phone.OfflineSwitch.UncheckAsync();
        await Expect(_phone.SyncStatus).ToContainTextAsync("Live");
        await Expect(_phone.SyncStatus).ToContainTextAsync("Up to date");
        await Screenshots.SaveAsync(_phone.Page, "sync-status-up-to-date");

        var states = await _phone.Page.EvaluateAsync<string[]>("() => window.convergeStates");
        var afterOffline = states.SkipWhile(s => !s.StartsWith("Offline", StringComparison.Ordinal)).ToList();
        var live = afterOffline.FindIndex(s => s.StartsWith("Live", StringComparison.Ordinal));
        Assert.True(
            afterOffline.Count > 0 && live > 0 && afterOffline[^1] == "Live · Up to date",
            $"The status went {string.Join(" → ", states)}; expected Offline, then Live, then Live and Up to date.");
    }
}
