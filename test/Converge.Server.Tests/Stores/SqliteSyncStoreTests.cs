using Converge.Server.Storage;
using Converge.Server.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Tests.Stores;

/// <summary>The store contract, run against the embedded SQLite store on real files.</summary>
public sealed class SqliteSyncStoreContractTests : SyncStoreContract
{
    private readonly string _directory = Directory.CreateTempSubdirectory("converge-server-store-").FullName;

    protected override Task<ISyncStore> CreateStoreAsync(string name) =>
        Task.FromResult<ISyncStore>(new SqliteSyncStore(Path.Combine(_directory, name + ".db"), SynchronousMode.Normal));

    protected override Task CloseStoreAsync(ISyncStore store)
    {
        ((SqliteSyncStore)store).Dispose();
        return Task.CompletedTask;
    }

    protected override Task CleanUpAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>What only the SQLite store does: one writer at a time.</summary>
public sealed class SqliteSyncStoreTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("converge-server-store-").FullName;
    private SqliteSyncStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = new SqliteSyncStore(Path.Combine(_directory, "s.db"), SynchronousMode.Normal);
        await _store.InitializeAsync(CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        _store.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task One_writer_at_a_time_and_the_next_one_enters_when_the_first_ends()
    {
        var first = await _store.BeginAsync(CancellationToken.None);
        var second = _store.BeginAsync(CancellationToken.None);
        using var cancelled = new CancellationTokenSource();
        var third = _store.BeginAsync(cancelled.Token);

        Assert.False(second.IsCompleted);
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
        await first.DisposeAsync();
        await using var entered = await second.WaitAsync(TimeSpan.FromSeconds(30));
        await entered.CommitAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_second_store_on_the_same_file_is_refused_with_a_clear_error()
    {
        using var second = new SqliteSyncStore(Path.Combine(_directory, "s.db"), SynchronousMode.Normal);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => second.InitializeAsync(CancellationToken.None));
        Assert.Contains("in use", error.Message, StringComparison.OrdinalIgnoreCase);
    }
}
