using System.Globalization;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>
/// A person settles the sample's Manual conflicts in the browser. Each conflict is made the way it happens: both devices
/// offline edit the same note; the phone comes back first, so the laptop's write is the one that meets the conflict.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class ConflictResolverTests(Chromium chromium) : IAsyncLifetime
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
    public async Task Both_devices_edit_one_note_offline_and_the_person_picks_per_field()
    {
        await _phone.CreateNoteAsync("Groceries", "eggs", "yellow", pinned: false);
        await Expect(_laptop.Note("Groceries")).ToBeVisibleAsync();

        await GoOfflineAsync();
        await _phone.EditNoteAsync("Groceries", async d =>
        {
            await d.EditorText.FillAsync("eggs, milk");
            await d.EditorColor.FillAsync("green");
        });
        await _laptop.EditNoteAsync("Groceries", async d =>
        {
            await d.EditorText.FillAsync("eggs, bread");
            await d.EditorPinned.CheckAsync();
        });
        await _phone.WaitPendingAsync(1);
        await _laptop.WaitPendingAsync(1);
        await PhoneThenLaptopOnlineAsync();

        // Only the text waits for the person; the phone's color and the laptop's pin were merged.
        await Expect(_laptop.Conflicts).ToContainTextAsync("1 of 1");
        await Expect(_laptop.ConflictHeading).ToHaveTextAsync(new Regex("^notes/"));
        await Expect(_laptop.Conflicts.GetByRole(AriaRole.Radiogroup)).ToHaveCountAsync(1);
        await Expect(_laptop.ConflictField("text")).ToContainTextAsync("eggs, bread");
        await Expect(_laptop.ConflictField("text")).ToContainTextAsync("eggs, milk");
        await _laptop.ExpectNoteAsync("Groceries", "eggs, milk", "green", pinned: true);
        await Screenshots.SaveAsync(_laptop.Page, "conflict-resolver-desktop", forDocs: true);
        await Screenshots.SaveAtPhoneWidthAsync(_laptop.Page, "conflict-resolver-phone", forDocs: true);

        await _laptop.Choice("text", "Mine").CheckAsync();
        await _laptop.ConflictButton("Resolve").ClickAsync();

        await _laptop.WaitNoConflictsAsync();
        await _phone.WaitNoConflictsAsync();
        await _laptop.ExpectNoteAsync("Groceries", "eggs, bread", "green", pinned: true);
        await _phone.ExpectNoteAsync("Groceries", "eggs, bread", "green", pinned: true);
        await Screenshots.SaveAsync(_phone.Page, "conflict-resolved-phone");
    }

    [Fact]
    public async Task Keep_theirs_for_all_settles_twenty_conflicts()
    {
        // The notes are made in the browser, on the phone, as a person would.
        var titles = Enumerable.Range(1, 20).Select(i => $"Note {i.ToString("00", CultureInfo.InvariantCulture)}").ToList();
        foreach (var title in titles)
        {
            await _phone.CreateNoteAsync(title, "first draft", "white", pinned: false);
        }

        foreach (var title in titles)
        {
            await Expect(_laptop.Note(title)).ToBeVisibleAsync();
        }

        await GoOfflineAsync();
        foreach (var title in titles)
        {
            await _phone.EditNoteAsync(title, d => d.EditorText.FillAsync($"{title} from the phone"));
            await _laptop.EditNoteAsync(title, d => d.EditorText.FillAsync($"{title} from the laptop"));
        }

        await _phone.WaitPendingAsync(20);
        await _laptop.WaitPendingAsync(20);
        await PhoneThenLaptopOnlineAsync();

        await Expect(_laptop.Conflicts).ToContainTextAsync("1 of 20");
        await Screenshots.SaveAsync(_laptop.Page, "conflict-queue-desktop");
        await _laptop.ConflictButton("Keep theirs for all").ClickAsync();

        await _laptop.WaitNoConflictsAsync();
        await _phone.WaitNoConflictsAsync();
        foreach (var title in titles)
        {
            await _laptop.ExpectNoteAsync(title, $"{title} from the phone", "white", pinned: false);
            await _phone.ExpectNoteAsync(title, $"{title} from the phone", "white", pinned: false);
        }
    }

    [Fact]
    public async Task A_conflict_is_resolved_from_the_keyboard_alone()
    {
        await _phone.CreateNoteAsync("Plan", "draft", "red", pinned: false);
        await Expect(_laptop.Note("Plan")).ToBeVisibleAsync();

        await GoOfflineAsync();
        await _phone.EditNoteAsync("Plan", d => d.EditorText.FillAsync("plan A"));
        await _laptop.EditNoteAsync("Plan", d => d.EditorText.FillAsync("plan B"));
        await _laptop.WaitPendingAsync(1);
        await PhoneThenLaptopOnlineAsync();
        await Expect(_laptop.ConflictField("text")).ToBeVisibleAsync();

        // From here on, keys only. Tab enters the radio group; the arrow keys move through it, as in any radio group.
        var keyboard = _laptop.Page.Keyboard;
        await _laptop.TabToAsync(_laptop.ConflictField("text"));
        for (var i = 0; i < 3 && !await _laptop.Choice("text", "Edit").IsCheckedAsync(); i++)
        {
            await keyboard.PressAsync("ArrowDown");
        }

        await keyboard.PressAsync("Space");
        await Expect(_laptop.Choice("text", "Edit")).ToBeCheckedAsync();
        await _laptop.TabToAsync(_laptop.EditedValue("text"));
        await keyboard.PressAsync("Control+A");
        await keyboard.TypeAsync("plan A+B");
        await _laptop.TabToAsync(_laptop.ConflictButton("Resolve"));
        await keyboard.PressAsync("Enter");

        await _laptop.WaitNoConflictsAsync();
        await _phone.WaitNoConflictsAsync();
        await _laptop.ExpectNoteAsync("Plan", "plan A+B", "red", pinned: false);
        await _phone.ExpectNoteAsync("Plan", "plan A+B", "red", pinned: false);
    }

    private async Task GoOfflineAsync()
    {
        await _phone.WaitUpToDateAsync();
        await _laptop.WaitUpToDateAsync();
        await _phone.SetOfflineAsync(true);
        await _laptop.SetOfflineAsync(true);
    }

    // The phone's writes reach the server first; the laptop's then meet them, and the conflict is the laptop's.
    private async Task PhoneThenLaptopOnlineAsync()
    {
        await _phone.SetOfflineAsync(false);
        await _phone.WaitUpToDateAsync();
        await _laptop.SetOfflineAsync(false);
        await _laptop.WaitUpToDateAsync();
    }
}
