using Converge.Work.Storage;
using Converge.Work.Tests.Engine;

namespace Converge.Work.Tests.Storage;

/// <summary>The store seam other packages implement: its version is checked before a store opens, and queries honour their token.</summary>
public class StoreSeamTests
{
    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void A_store_package_built_for_another_contract_version_is_refused_before_it_opens(int offset)
    {
        var provider = new ProviderOfVersion(WorkStoreContract.Version + offset);
        var options = new WorkManagerOptions { StoreProvider = provider };

        var e = Assert.Throws<InvalidOperationException>(() => new WorkManager(options, new WorkerRegistry()));

        Assert.False(provider.Opened);
        Assert.Contains($"version {WorkStoreContract.Version + offset} of the work store contract", e.Message, StringComparison.Ordinal);
        Assert.Contains($"implements version {WorkStoreContract.Version}", e.Message, StringComparison.Ordinal);
        var storePackage = typeof(ProviderOfVersion).Assembly.GetName().Name!;
        Assert.Contains(offset < 0 ? $"Update {storePackage} to the release" : "Update Converge.Work to the release", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_test_driver_of_another_release_is_refused_with_the_package_to_update()
    {
        var testing = typeof(Converge.Work.Testing.WorkTestDriver).Assembly;

        WorkStoreContract.ThrowIfUnsupported(WorkStoreContract.Version, testing);
        var e = Assert.Throws<InvalidOperationException>(() => WorkStoreContract.ThrowIfUnsupported(WorkStoreContract.Version - 1, testing));

        Assert.Contains($"Converge.Work.Testing {testing.GetName().Version} uses version {WorkStoreContract.Version - 1}", e.Message, StringComparison.Ordinal);
        Assert.Contains("Update Converge.Work.Testing to the release that matches Converge.Work", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_postgresql_store_states_the_contract_version_it_was_built_for()
    {
        var options = new WorkManagerOptions().UsePostgreSql("Host=127.0.0.1");

        Assert.Equal(WorkStoreContract.Version, options.StoreProvider!.ContractVersion);
    }

    [Fact]
    public async Task A_postgresql_query_stops_when_its_token_is_cancelled()
    {
        var cs = await Stores.PostgreSqlDatabaseAsync();
        var schema = Stores.NewSchema("cancel");
        await using var manager = new WorkManager(new WorkManagerOptions { EnqueueOnly = true }.UsePostgreSql(cs, s => s.Schema = schema), new WorkerRegistry());
        await manager.EnqueueAsync(OneTimeWorkRequest.From("x"));

        // Another session holds the table: a query waits for it on the server until that session lets go.
        await using var holder = new Npgsql.NpgsqlConnection(cs);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        using (var lockTable = new Npgsql.NpgsqlCommand($"LOCK TABLE {schema}.work IN ACCESS EXCLUSIVE MODE", holder, hold))
        {
            await lockTable.ExecuteNonQueryAsync();
        }

        using var cts = new CancellationTokenSource();
        var query = manager.GetWorkInfosAsync(WorkQuery.ForStates(WorkState.Enqueued), cts.Token);
        Assert.False(query.IsCompleted);
        await cts.CancelAsync();

        // The query ends while the table is still held: the token reached the server, and no thread waited for it.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => query.WaitAsync(TimeSpan.FromSeconds(30)));
        await hold.RollbackAsync();
        Assert.Single(await manager.GetWorkInfosAsync(WorkQuery.ForStates(WorkState.Enqueued)));
    }

    private sealed class ProviderOfVersion(int version) : IWorkStoreProvider
    {
        public bool Opened { get; private set; }

        public int ContractVersion => version;

        public IWorkStore Open(WorkStoreContext context)
        {
            Opened = true;
            throw new InvalidOperationException("A store of another contract version must not be opened.");
        }
    }
}
