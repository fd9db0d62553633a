namespace Converge.Browser.Tests;

/// <summary>
/// The TodoApp sample end to end in a real browser: a Converge server and two devices, "phone" at a phone's width and
/// "laptop" at a desktop's, each its own process with its own store. Every wait is an auto-waiting expectation.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class TodoAppTests(Chromium chromium) : TwoDeviceTests(chromium)
{
    [Fact]
    public async Task A_todo_added_on_one_deviceAppears_on_the_other_without_a_reload()
    {
        // A mark only this load of the page holds: a reload would lose it.
        await Laptop.Page.EvaluateAsync("() => { window.convergeSamePage = true; }");

        await Phone.AddTodoAsync("Buy milk");

        await Expect(Laptop.Todo("Buy milk")).ToBeVisibleAsync();
        await Expect(Laptop.Todo("Buy milk")).Not.ToBeCheckedAsync();
        Assert.True(await Laptop.Page.EvaluateAsync<bool>("() => window.convergeSamePage === true"), "The laptop's page was reloaded.");

        // Done on the laptop shows on the phone the same way.
        await Laptop.Todo("Buy milk").CheckAsync();
        await Expect(Phone.Todo("Buy milk")).ToBeCheckedAsync();

        await Screenshots.SaveAsync(Phone.Page, "todoapp-phone", forDocs: true);
        await Screenshots.SaveAsync(Laptop.Page, "todoapp-desktop", forDocs: true);
    }

    [Fact]
    public async Task The_sync_status_shows_offline_then_live_then_up_to_date_as_the_switch_flips()
    {
        await Phone.WaitUpToDateAsync();

        // The status's two words, the connection's and the data's, each time they change, recorded in the page: a state
        // that lasts a moment is seen too.
        await Phone.SyncStatus.EvaluateAsync("""
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

        await Phone.OfflineSwitch.CheckAsync();
        await Expect(Phone.OfflineSwitch).ToBeCheckedAsync();
        await Expect(Phone.SyncStatus).ToContainTextAsync("Offline");
        await Screenshots.SaveAsync(Phone.Page, "sync-status-offline");

        await Phone.OfflineSwitch.UncheckAsync();
        await Expect(Phone.SyncStatus).ToContainTextAsync("Live");
        await Expect(Phone.SyncStatus).ToContainTextAsync("Up to date");
        await Screenshots.SaveAsync(Phone.Page, "sync-status-up-to-date");

        var states = await Phone.Page.EvaluateAsync<string[]>("() => window.convergeStates");
        var afterOffline = states.SkipWhile(s => !s.StartsWith("Offline", StringComparison.Ordinal)).ToList();
        var live = afterOffline.FindIndex(s => s.StartsWith("Live", StringComparison.Ordinal));
        Assert.True(
            afterOffline.Count > 0 && live > 0 && afterOffline[^1] == "Live · Up to date",
            $"The status went {string.Join(" → ", states)}; expected Offline, then Live, then Live and Up to date.");
    }
}
