using System.Globalization;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>
/// A person settles the sample's Manual conflicts in the browser. Each conflict is made the way it happens: both devices
/// offline edit the same note; the phone comes back first, so the laptop's write is the one that meets the conflict.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class ConflictResolverTests(Chromium chromium) : TwoDeviceTests(chromium)
{
    [Fact]
    public async Task Both_devices_edit_one_note_offline_and_the_person_picks_per_field()
    {
        await Phone.CreateNoteAsync("Groceries", "eggs", "yellow", pinned: false);
        await Expect(Laptop.Note("Groceries")).ToBeVisibleAsync();

        await GoOfflineAsync();
        await Phone.EditNoteAsync("Groceries", async d =>
        {
            await d.EditorText.FillAsync("eggs, milk");
            await d.EditorColor.FillAsync("green");
        });
        await Laptop.EditNoteAsync("Groceries", async d =>
        {
            await d.EditorText.FillAsync("eggs, bread");
            await d.EditorPinned.CheckAsync();
        });
        await Phone.WaitPendingAsync(1);
        await Laptop.WaitPendingAsync(1);
        await PhoneThenLaptopOnlineAsync();

        // Only the text waits for the person; the phone's color and the laptop's pin were merged.
        await Expect(Laptop.Conflicts).ToContainTextAsync("1 of 1");
        await Expect(Laptop.ConflictHeading).ToHaveTextAsync(new Regex("^notes/"));
        await Expect(Laptop.Conflicts.GetByRole(AriaRole.Radiogroup)).ToHaveCountAsync(1);
        await Expect(Laptop.ConflictField("text")).ToContainTextAsync("eggs, bread");
        await Expect(Laptop.ConflictField("text")).ToContainTextAsync("eggs, milk");
        await Laptop.ExpectNoteAsync("Groceries", "eggs, milk", "green", pinned: true);
        await Screenshots.SaveAsync(Laptop.Page, "conflict-resolver-desktop", forDocs: true);
        await Screenshots.SaveAtPhoneWidthAsync(Laptop.Page, "conflict-resolver-phone", forDocs: true);

        await Laptop.Choice("text", "Mine").CheckAsync();
        await Laptop.ConflictButton("Resolve").ClickAsync();

        await Laptop.WaitNoConflictsAsync();
        await Phone.WaitNoConflictsAsync();
        await Laptop.ExpectNoteAsync("Groceries", "eggs, bread", "green", pinned: true);
        await Phone.ExpectNoteAsync("Groceries", "eggs, bread", "green", pinned: true);
        await Screenshots.SaveAsync(Phone.Page, "conflict-resolved-phone");
    }

    [Fact]
    public async Task Keep_theirs_for_all_settles_twenty_conflicts()
    {
        // The notes are made in the browser, on the phone, as a person would.
        var titles = Enumerable.Range(1, 20).Select(i => $"Note {i.ToString("00", CultureInfo.InvariantCulture)}").ToList();
        foreach (var title in titles)
        {
            await Phone.CreateNoteAsync(title, "first draft", "white", pinned: false);
        }

        foreach (var title in titles)
        {
            await Expect(Laptop.Note(title)).ToBeVisibleAsync();
        }

        await GoOfflineAsync();
        foreach (var title in titles)
        {
            await Phone.EditNoteAsync(title, d => d.EditorText.FillAsync($"{title} from the phone"));
            await Laptop.EditNoteAsync(title, d => d.EditorText.FillAsync($"{title} from the laptop"));
        }

        await Phone.WaitPendingAsync(20);
        await Laptop.WaitPendingAsync(20);
        await PhoneThenLaptopOnlineAsync();

        await Expect(Laptop.Conflicts).ToContainTextAsync("1 of 20");
        await Screenshots.SaveAsync(Laptop.Page, "conflict-queue-desktop");
        await Laptop.ConflictButton("Keep theirs for all").ClickAsync();

        await Laptop.WaitNoConflictsAsync();
        await Phone.WaitNoConflictsAsync();
        foreach (var title in titles)
        {
            await Laptop.ExpectNoteAsync(title, $"{title} from the phone", "white", pinned: false);
            await Phone.ExpectNoteAsync(title, $"{title} from the phone", "white", pinned: false);
        }
    }

    [Fact]
    public async Task A_conflict_is_resolved_from_the_keyboard_alone()
    {
        await Phone.CreateNoteAsync("Plan", "draft", "red", pinned: false);
        await Expect(Laptop.Note("Plan")).ToBeVisibleAsync();

        await GoOfflineAsync();
        await Phone.EditNoteAsync("Plan", d => d.EditorText.FillAsync("plan A"));
        await Laptop.EditNoteAsync("Plan", d => d.EditorText.FillAsync("plan B"));
        await Laptop.WaitPendingAsync(1);
        await PhoneThenLaptopOnlineAsync();
        await Expect(Laptop.ConflictField("text")).ToBeVisibleAsync();

        // From here on, keys only. Tab enters the radio group; the arrow keys move through it, as in any radio group.
        var keyboard = Laptop.Page.Keyboard;
        await Laptop.TabToAsync(Laptop.ConflictField("text"));
        for (var i = 0; i < 3 && !await Laptop.Choice("text", "Edit").IsCheckedAsync(); i++)
        {
            await keyboard.PressAsync("ArrowDown");
        }

        await keyboard.PressAsync("Space");
        await Expect(Laptop.Choice("text", "Edit")).ToBeCheckedAsync();
        await Laptop.TabToAsync(Laptop.EditedValue("text"));
        await keyboard.PressAsync("Control+A");
        await keyboard.TypeAsync("plan A+B");
        await Laptop.TabToAsync(Laptop.ConflictButton("Resolve"));
        await keyboard.PressAsync("Enter");

        await Laptop.WaitNoConflictsAsync();
        await Phone.WaitNoConflictsAsync();
        await Laptop.ExpectNoteAsync("Plan", "plan A+B", "red", pinned: false);
        await Phone.ExpectNoteAsync("Plan", "plan A+B", "red", pinned: false);
    }

    private async Task GoOfflineAsync()
    {
        await Phone.WaitUpToDateAsync();
        await Laptop.WaitUpToDateAsync();
        await Phone.SetOfflineAsync(true);
        await Laptop.SetOfflineAsync(true);
    }

    // The phone's writes reach the server first; the laptop's then meet them, and the conflict is the laptop's.
    private async Task PhoneThenLaptopOnlineAsync()
    {
        await Phone.SetOfflineAsync(false);
        await Phone.WaitUpToDateAsync();
        await Laptop.SetOfflineAsync(false);
        await Laptop.WaitUpToDateAsync();
    }
}
