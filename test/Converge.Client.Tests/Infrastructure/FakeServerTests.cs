namespace Converge.Client.Tests.Infrastructure;

/// <summary>A test class with a scratch folder and an in-process fake sync server of its own, started before each test and stopped after.</summary>
public abstract class FakeServerTests : IAsyncLifetime
{
    /// <summary>Gets the scratch folder, deleted after the test.</summary>
    protected TestFolder Folder { get; } = new();

    /// <summary>Gets the fake server, started before the test.</summary>
    protected FakeSyncServer FakeServer { get; private set; } = null!;

    /// <inheritdoc/>
    public async Task InitializeAsync() => FakeServer = await FakeSyncServer.StartAsync();

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        await FakeServer.DisposeAsync();
        Folder.Dispose();
    }
}
