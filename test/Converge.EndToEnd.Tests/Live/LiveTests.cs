using Converge.Client;

namespace Converge.EndToEnd.Tests.Live;

/// <summary>The live channel end to end: real Kestrel, real WebSockets, real SQLite files.</summary>
public sealed class LiveTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_write_on_one_device_is_seen_on_another_without_any_sync_call()
    {
        await using var server = await SyncServer.StartAsync();
        var a = await server.OpenClientAsync("a");
        var b = await server.OpenClientAsync("b");
        a.Live.Start();
        b.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        await b.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        var seen = new TaskCompletionSource<DocumentChangedEventArgs<Todo>>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Collection<Todo>("todos").Changed += (_, e) => seen.TrySetResult(e);
        await a.Collection<Todo>("todos").PutAsync("t1", new Todo { Title = "live" });

        var change = await seen.Task.WaitAsync(Patience);
        Assert.Equal(ChangeOrigin.Remote, change.Origin);
        Assert.Equal("t1", change.Id);
        Assert.Equal("live", (await b.Collection<Todo>("todos").GetAsync("t1"))!.Title);
        Assert.Equal(0, await a.GetPendingCountAsync());
    }
}
