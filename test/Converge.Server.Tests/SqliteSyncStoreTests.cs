using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Storage;
using Converge.Server.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Tests;

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

    private static DocumentState State(long revision) => new()
    {
        Fields = new Dictionary<string, FieldState> { ["v"] = FieldState.Written(System.Text.Json.JsonSerializer.SerializeToElement(revision), new HybridTimestamp(1, 0, 1), revision, 1) },
        Revision = revision,
    };

    private static ConflictRecord Conflict(string id, long revision) => new()
    {
        Id = id,
        Scope = "s",
        Collection = "c",
        DocumentId = "d1",
        Revision = revision,
        Status = ConflictStatus.Open,
        Fields = [],
        ClientId = "0000000000000001",
        CreatedAt = Times.Start,
    };

    [Fact]
    public async Task Changes_merge_documents_and_conflict_records_in_revision_order_within_the_limit()
    {
        await using (var transaction = await _store.BeginAsync(CancellationToken.None))
        {
            await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d1"), State(1), null, CancellationToken.None);
            await transaction.WriteConflictAsync(Conflict("k2", 2), null, CancellationToken.None);
            await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d3"), State(3), null, CancellationToken.None);
            await transaction.WriteConflictAsync(Conflict("k4", 4), null, CancellationToken.None);
            await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d5"), State(5), null, CancellationToken.None);
            await transaction.WriteDocumentAsync(new DocumentKey("other", "c", "d1"), State(9), null, CancellationToken.None);
            await transaction.WriteScopeRevisionAsync("s", 5, CancellationToken.None);
            await transaction.CommitAsync(CancellationToken.None);
        }

        var first = await _store.ReadChangesAsync("s", 0, 2, CancellationToken.None);
        var second = await _store.ReadChangesAsync("s", 2, 3, CancellationToken.None);
        var none = await _store.ReadChangesAsync("s", 5, 3, CancellationToken.None);

        Assert.Equal([1L], first.Documents.Select(d => d.State.Revision));
        Assert.Equal([2L], first.Conflicts.Select(c => c.Revision));
        Assert.True(first.HasMore);
        Assert.Equal(5, first.ScopeRevision);
        Assert.Equal([3L, 5L], second.Documents.Select(d => d.State.Revision));
        Assert.Equal([4L], second.Conflicts.Select(c => c.Revision));
        Assert.False(second.HasMore);
        Assert.Empty(none.Documents);
        Assert.False(none.HasMore);
    }

    [Fact]
    public async Task A_transaction_disposed_without_commit_leaves_nothing()
    {
        await using (var transaction = await _store.BeginAsync(CancellationToken.None))
        {
            await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d"), State(1), null, CancellationToken.None);
            await transaction.WriteScopeRevisionAsync("s", 1, CancellationToken.None);
            await transaction.WriteLastMutationIdAsync("p", "0000000000000001", 7, CancellationToken.None);
        }

        var page = await _store.ReadChangesAsync("s", 0, 10, CancellationToken.None);
        Assert.Empty(page.Documents);
        Assert.Equal(0, page.ScopeRevision);
        await using var check = await _store.BeginAsync(CancellationToken.None);
        Assert.Equal(0, await check.ReadLastMutationIdAsync("p", "0000000000000001", CancellationToken.None));
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
    public async Task Client_progress_is_kept_per_principal()
    {
        await using (var transaction = await _store.BeginAsync(CancellationToken.None))
        {
            await transaction.WriteLastMutationIdAsync("alice", "0000000000000001", 5, CancellationToken.None);
            await transaction.CommitAsync(CancellationToken.None);
        }

        await using var read = await _store.BeginAsync(CancellationToken.None);
        Assert.Equal(5, await read.ReadLastMutationIdAsync("alice", "0000000000000001", CancellationToken.None));
        Assert.Equal(0, await read.ReadLastMutationIdAsync("mallory", "0000000000000001", CancellationToken.None));
    }
}
