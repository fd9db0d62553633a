using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Converge.Browser.Tests;

/// <summary>
/// One device's page of the TodoApp sample, seen the way a person (or a screen reader) sees it: every element is found
/// by its role and accessible name, as the sample's accessible contract names them, never by a CSS class.
/// </summary>
internal sealed partial class DevicePage
{
    private DevicePage(string name, IPage page)
    {
        Name = name;
        Page = page;
    }

    /// <summary>The device's name: "phone", "laptop".</summary>
    public string Name { get; }

    public IPage Page { get; }

    public ILocator OfflineSwitch => Page.GetByRole(AriaRole.Switch, new() { Name = "Offline", Exact = true });

    public ILocator SyncStatus => Page.GetByRole(AriaRole.Status, new() { Name = "Sync status", Exact = true });

    public ILocator Todos => Region("Todos");

    public ILocator TodosList => Todos.GetByRole(AriaRole.List, new() { Name = "Todos list", Exact = true });

    public ILocator Notes => Region("Notes");

    public ILocator NotesList => Notes.GetByRole(AriaRole.List, new() { Name = "Notes list", Exact = true });

    public ILocator Editor => Region("Note editor");

    public ILocator EditorTitle => Editor.GetByRole(AriaRole.Textbox, new() { Name = "Title", Exact = true });

    public ILocator EditorText => Editor.GetByRole(AriaRole.Textbox, new() { Name = "Text", Exact = true });

    public ILocator EditorColor => Editor.GetByRole(AriaRole.Textbox, new() { Name = "Color", Exact = true });

    public ILocator EditorPinned => Editor.GetByRole(AriaRole.Checkbox, new() { Name = "Pinned", Exact = true });

    public ILocator Conflicts => Region("Conflicts");

    /// <summary>The open conflict's heading, "{collection}/{id}".</summary>
    public ILocator ConflictHeading => Conflicts.GetByRole(AriaRole.Heading, new() { Level = 3 });

    /// <summary>Opens the device's page in a browser context of its own, and waits until the page answers clicks.</summary>
    public static async Task<DevicePage> OpenAsync(Chromium chromium, TodoApp app, string name, ViewportSize viewport)
    {
        var page = await chromium.NewPageAsync(viewport);
        await page.GotoAsync(app.Devices[name].ToString());
        var device = new DevicePage(name, page);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = $"Todos on {name}", Exact = true, Level = 1 })).ToBeVisibleAsync();
        await device.WaitUntilInteractiveAsync();
        return device;
    }

    public ILocator Button(string name) => Page.GetByRole(AriaRole.Button, new() { Name = name, Exact = true });

    public ILocator ConflictButton(string name) => Conflicts.GetByRole(AriaRole.Button, new() { Name = name, Exact = true });

    /// <summary>The radio group of one conflicting field, named by the field.</summary>
    public ILocator ConflictField(string field) => Conflicts.GetByRole(AriaRole.Radiogroup, new() { Name = field, Exact = true });

    /// <summary>The "Mine", "Theirs" or "Edit" choice of one conflicting field.</summary>
    public ILocator Choice(string field, string choice) => ConflictField(field).GetByRole(AriaRole.Radio, new() { Name = choice, Exact = true });

    public ILocator EditedValue(string field) => Conflicts.GetByRole(AriaRole.Textbox, new() { Name = $"Edited value of {field}", Exact = true });

    /// <summary>Turns the offline switch on or off, and waits for the sync status to follow it.</summary>
    public async Task SetOfflineAsync(bool offline)
    {
        await OfflineSwitch.SetCheckedAsync(offline);
        if (offline)
        {
            await Expect(SyncStatus).ToContainTextAsync("Offline");
        }
        else
        {
            await Expect(SyncStatus).Not.ToContainTextAsync("Offline");
        }
    }

    /// <summary>Waits until the device is online, has pushed every write it holds and has pulled what the server has.</summary>
    public async Task WaitUpToDateAsync()
    {
        await Expect(SyncStatus).ToContainTextAsync("Up to date");
        await Expect(SyncStatus).Not.ToContainTextAsync(Pending());
    }

    /// <summary>Waits until the sync status counts <paramref name="count"/> writes not yet sent.</summary>
    public Task WaitPendingAsync(int count) => Expect(SyncStatus).ToContainTextAsync($"{count} pending");

    public async Task AddTodoAsync(string title)
    {
        await Todos.GetByRole(AriaRole.Textbox, new() { Name = "New todo", Exact = true }).FillAsync(title);
        await Todos.GetByRole(AriaRole.Button, new() { Name = "Add todo", Exact = true }).ClickAsync();
        await Expect(Todo(title)).ToBeVisibleAsync();
    }

    /// <summary>The checkbox of the todo named <paramref name="title"/>, in the todos list.</summary>
    public ILocator Todo(string title) => TodosList.GetByRole(AriaRole.Listitem).GetByRole(AriaRole.Checkbox, new() { Name = title, Exact = true });

    /// <summary>The note's "Edit {title}" button, in the notes list.</summary>
    public ILocator Note(string title) => NotesList.GetByRole(AriaRole.Button, new() { Name = $"Edit {title}", Exact = true });

    public async Task CreateNoteAsync(string title, string text, string color, bool pinned)
    {
        await Notes.GetByRole(AriaRole.Button, new() { Name = "New note", Exact = true }).ClickAsync();
        await EditorTitle.FillAsync(title);
        await EditorText.FillAsync(text);
        await EditorColor.FillAsync(color);
        await EditorPinned.SetCheckedAsync(pinned);
        await Editor.GetByRole(AriaRole.Button, new() { Name = "Save note", Exact = true }).ClickAsync();
        await Expect(Note(title)).ToBeVisibleAsync();
    }

    /// <summary>Opens the note in the editor, lets <paramref name="change"/> edit its fields, and saves it.</summary>
    public async Task EditNoteAsync(string title, Func<DevicePage, Task> change)
    {
        await OpenNoteAsync(title);
        await change(this);
        await Editor.GetByRole(AriaRole.Button, new() { Name = "Save note", Exact = true }).ClickAsync();
    }

    public async Task OpenNoteAsync(string title)
    {
        await Note(title).ClickAsync();
        await Expect(EditorTitle).ToHaveValueAsync(title);
    }

    /// <summary>Waits until the note, opened in the editor, holds these values.</summary>
    /// <remarks>
    /// The editor may show a note as it was when opened; so the note is opened again until it holds the values or the
    /// time runs out, each try an auto-waiting expectation of its own.
    /// </remarks>
    public async Task ExpectNoteAsync(string title, string text, string color, bool pinned)
    {
        var elapsed = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await OpenNoteAsync(title);
                var quick = TimeSpan.FromSeconds(2).TotalMilliseconds;
                await Expect(EditorText).ToHaveValueAsync(text, new() { Timeout = (float)quick });
                await Expect(EditorColor).ToHaveValueAsync(color, new() { Timeout = (float)quick });
                await Expect(EditorPinned).ToBeCheckedAsync(new() { Checked = pinned, Timeout = (float)quick });
                return;
            }
            catch (PlaywrightException) when (elapsed.Elapsed < Chromium.Timeout)
            {
            }
        }
    }

    /// <summary>Waits until the conflict queue is empty.</summary>
    public Task WaitNoConflictsAsync() => Expect(Conflicts).ToContainTextAsync("No conflicts");

    /// <summary>Presses Tab until <paramref name="target"/> holds the focus (or contains it); fails after 100 presses.</summary>
    public async Task TabToAsync(ILocator target)
    {
        for (var i = 0; i < 100; i++)
        {
            await Page.Keyboard.PressAsync("Tab");
            if (await target.EvaluateAsync<bool>("e => e === document.activeElement || e.contains(document.activeElement)"))
            {
                return;
            }
        }

        Assert.Fail($"100 presses of Tab on {Name} never reached {target}.");
    }

    private ILocator Region(string name) => Page.GetByRole(AriaRole.Region, new() { Name = name, Exact = true });

    /// <summary>Waits until the page's interactive session has attached its event handlers.</summary>
    /// <remarks>
    /// A Blazor page is first sent as plain HTML; a click before its circuit connects does nothing. Blazor marks each
    /// element whose events it handles with a property named _blazorEvents_N, so the page answers once one has it.
    /// </remarks>
    private Task WaitUntilInteractiveAsync() => Page.WaitForFunctionAsync(
        "() => !window.Blazor || [...document.querySelectorAll('input, button, textarea')].some(e => Object.keys(e).some(k => k.startsWith('_blazorEvents')))",
        null,
        new() { Timeout = (float)Chromium.Timeout.TotalMilliseconds });

    [GeneratedRegex(@"\b[1-9][0-9]* pending")]
    private static partial Regex Pending();
}
