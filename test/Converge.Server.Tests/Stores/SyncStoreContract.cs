using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Storage;

namespace Converge.Server.Tests.Stores;

/// <summary>
/// What every <see cref="ISyncStore"/> must do, whatever it runs on. A store's test class derives from this one and
/// says how to open its store; the SQLite store runs it here, and any other store runs the same suite.
/// </summary>
public abstract class SyncStoreContract : IAsyncLifetime
{
    private readonly List<ISyncStore> _opened = [];

    /// <summary>Opens the store named <paramref name="name"/>: the same name gives the same data, across reopenings.</summary>
    protected abstract Task<ISyncStore> CreateStoreAsync(string name);

    /// <summary>Closes a store, releasing what it holds, so it can be opened again.</summary>
    protected abstract Task CloseStoreAsync(ISyncStore store);

    /// <summary>Removes every store the test made.</summary>
    protected abstract Task CleanUpAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await CloseStoreAsync(store);
        }

        await CleanUpAsync();
    }

    protected async Task<ISyncStore> OpenAsync(string name = "main")
    {
        var store = await CreateStoreAsync(name);
        await store.InitializeAsync(CancellationToken.None);
        _opened.Add(store);
        return store;
    }

    protected async Task ReopenAsync(ISyncStore store)
    {
        _opened.Remove(store);
        await CloseStoreAsync(store);
    }

    internal static DocumentState State(long revision, string value = "v", bool deleted = false) => new()
    {
        Fields = deleted
            ? new Dictionary<string, FieldState>()
            : new Dictionary<string, FieldState> { ["v"] = FieldState.Written(JsonSerializer.SerializeToElement(value), new HybridTimestamp(1_700_000_000_000 + revision, 0, 1), revision, 1) },
        Deleted = deleted,
        DeletedRevision = deleted ? revision : 0,
        DeletedBy = deleted ? 1UL : 0,
        DeletedHlc = deleted ? new HybridTimestamp(1_700_000_000_000 + revision, 0, 1) : null,
        Revision = revision,
    };

    internal static ConflictRecord Conflict(string id, long revision, string scope = "s", ConflictStatus status = ConflictStatus.Open) => new()
    {
        Id = id,
        Scope = scope,
        Collection = "c",
        DocumentId = "d1",
        Revision = revision,
        Status = status,
        Fields = [],
        ClientId = "0000000000000001",
        CreatedAt = Times.Start,
    };

    private static async Task WriteAsync(ISyncStore store, Func<ISyncTransaction, Task> write)
    {
        await using var transaction = await store.BeginAsync(CancellationToken.None);
        await write(transaction);
        await transaction.CommitAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_new_store_is_empty_and_healthy()
    {
        var store = await OpenAsync();

        await store.CheckHealthAsync(CancellationToken.None);
        Assert.Null(await store.ReadClockAsync(CancellationToken.None));
        var page = await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None);
        Assert.Empty(page.Documents);
        Assert.Empty(page.Conflicts);
        Assert.Equal(0, page.ScopeRevision);
        Assert.Equal(0, page.MinValidCursor);
        Assert.False(page.HasMore);
    }

    [Fact]
    public async Task Documents_read_back_as_written_and_a_key_is_scope_collection_and_id()
    {
        var store = await OpenAsync();
        var (a, b, c) = (new DocumentKey("s", "c", "d"), new DocumentKey("s", "other", "d"), new DocumentKey("t", "c", "d"));
        await WriteAsync(store, async tx =>
        {
            await tx.WriteDocumentAsync(a, State(1, "in s/c"), null, CancellationToken.None);
            await tx.WriteDocumentAsync(b, State(2, "in s/other"), null, CancellationToken.None);
            await tx.WriteDocumentAsync(c, State(1, "in t/c"), null, CancellationToken.None);
        });

        await using var read = await store.BeginAsync(CancellationToken.None);
        var found = new Dictionary<DocumentKey, DocumentState>();
        await read.ReadDocumentsAsync([a, b, c, new DocumentKey("s", "c", "missing")], found, CancellationToken.None);

        Assert.Equal(3, found.Count);
        Assert.Equal("in s/c", found[a].Fields["v"].Value.GetString());
        Assert.Equal("in s/other", found[b].Fields["v"].Value.GetString());
        Assert.Equal("in t/c", found[c].Fields["v"].Value.GetString());
        Assert.True(found[a].SameContentAs(State(1, "in s/c")));
        Assert.Equal(2, found[b].Revision);
    }

    [Fact]
    public async Task Changes_merge_documents_and_conflict_records_in_revision_order_within_the_limit()
    {
        var store = await OpenAsync();
        await WriteAsync(store, async tx =>
        {
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d1"), State(1), null, CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("k2", 2), null, "apikey:a", CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d3"), State(3), null, CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("k4", 4), null, "apikey:a", CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d5"), State(5), null, CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("other", "c", "d1"), State(9), null, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("s", 5, CancellationToken.None);
        });

        var first = await store.ReadChangesAsync("s", 0, 2, int.MaxValue, CancellationToken.None);
        var second = await store.ReadChangesAsync("s", 2, 3, int.MaxValue, CancellationToken.None);
        var none = await store.ReadChangesAsync("s", 5, 3, int.MaxValue, CancellationToken.None);

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
    public async Task Pages_end_before_the_item_that_would_take_them_past_their_bytes_and_hold_at_least_one()
    {
        var store = await OpenAsync();
        var big = new string('x', 3_000);
        await WriteAsync(store, async tx =>
        {
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d1"), State(1, big), null, CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d2"), State(2, big), null, CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("k3", 3), null, "apikey:a", CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d4"), State(4), null, CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("k5", 5) with { DocumentId = "d2" }, null, "apikey:a", CancellationToken.None);
            await tx.WriteScopeRevisionAsync("s", 5, CancellationToken.None);
        });

        // Each big state is a little over 3,000 bytes: two do not fit in 5,000, and one alone is sent even in 100.
        var first = await store.ReadChangesAsync("s", 0, 10, 5_000, CancellationToken.None);
        var tiny = await store.ReadChangesAsync("s", 0, 10, 100, CancellationToken.None);
        var rest = await store.ReadChangesAsync("s", 1, 10, 5_000, CancellationToken.None);

        Assert.Equal([1L], first.Documents.Select(d => d.State.Revision));
        Assert.Empty(first.Conflicts);
        Assert.True(first.HasMore);
        Assert.Equal([1L], tiny.Documents.Select(d => d.State.Revision));
        Assert.True(tiny.HasMore);
        Assert.Equal([2L, 4L], rest.Documents.Select(d => d.State.Revision));
        Assert.Equal([3L, 5L], rest.Conflicts.Select(c => c.Revision));
        Assert.False(rest.HasMore);

        var conflicts = await store.ReadOpenConflictsAsync("s", 0, 1, int.MaxValue, CancellationToken.None);
        Assert.Equal(["k3"], conflicts.Conflicts.Select(c => c.Id));
        Assert.True(conflicts.HasMore);
        var next = await store.ReadOpenConflictsAsync("s", 3, 1, int.MaxValue, CancellationToken.None);
        Assert.Equal(["k5"], next.Conflicts.Select(c => c.Id));
        Assert.False(next.HasMore);
        var oneByBytes = await store.ReadOpenConflictsAsync("s", 0, 10, 1, CancellationToken.None);
        Assert.Equal(["k3"], oneByBytes.Conflicts.Select(c => c.Id));
        Assert.True(oneByBytes.HasMore);
    }

    [Fact]
    public async Task A_document_written_again_moves_to_its_new_revision_and_is_pulled_once()
    {
        var store = await OpenAsync();
        var key = new DocumentKey("s", "c", "d");
        await WriteAsync(store, tx => tx.WriteDocumentAsync(key, State(1, "first"), null, CancellationToken.None).AsTask());
        await WriteAsync(store, tx => tx.WriteDocumentAsync(new DocumentKey("s", "c", "e"), State(2), null, CancellationToken.None).AsTask());
        await WriteAsync(store, tx => tx.WriteDocumentAsync(key, State(3, "second"), null, CancellationToken.None).AsTask());

        var all = await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None);
        var after2 = await store.ReadChangesAsync("s", 2, 10, int.MaxValue, CancellationToken.None);

        Assert.Equal(["e", "d"], all.Documents.Select(d => d.DocumentId));
        Assert.Equal("second", Assert.Single(after2.Documents).State.Fields["v"].Value.GetString());
    }

    [Fact]
    public async Task A_transaction_disposed_without_commit_leaves_nothing()
    {
        var store = await OpenAsync();
        await using (var transaction = await store.BeginAsync(CancellationToken.None))
        {
            await transaction.WriteDocumentAsync(new DocumentKey("s", "c", "d"), State(1), null, CancellationToken.None);
            await transaction.WriteScopeRevisionAsync("s", 1, CancellationToken.None);
            await transaction.WriteClientProgressAsync("p", "0000000000000001", new ClientProgress(7, new HybridTimestamp(1_700_000_000_000, 7, 1)), Times.Start, CancellationToken.None);
            await transaction.WriteConflictAsync(Conflict("k", 1), null, "apikey:a", CancellationToken.None);
        }

        var page = await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None);
        Assert.Empty(page.Documents);
        Assert.Equal(0, page.ScopeRevision);
        Assert.Null(await store.ReadConflictAsync("k", CancellationToken.None));
        await using var check = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(0, (await check.ReadClientProgressAsync("p", "0000000000000001", CancellationToken.None)).LastMutationId);
    }

    [Fact]
    public async Task Scope_revisions_are_counted_per_scope()
    {
        var store = await OpenAsync();
        await WriteAsync(store, async tx =>
        {
            Assert.Equal(0, await tx.ReadScopeRevisionAsync("s", CancellationToken.None));
            await tx.WriteScopeRevisionAsync("s", 4, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("t", 9, CancellationToken.None);
        });

        await using var read = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(4, await read.ReadScopeRevisionAsync("s", CancellationToken.None));
        Assert.Equal(9, await read.ReadScopeRevisionAsync("t", CancellationToken.None));
        Assert.Equal(0, await read.ReadScopeRevisionAsync("u", CancellationToken.None));
    }

    [Fact]
    public async Task Client_progress_is_kept_per_principal_and_client()
    {
        var store = await OpenAsync();
        await WriteAsync(store, async tx =>
        {
            await tx.WriteClientProgressAsync("alice", "0000000000000001", new ClientProgress(5, new HybridTimestamp(1_700_000_000_000, 5, 1)), Times.Start, CancellationToken.None);
            await tx.WriteClientProgressAsync("alice", "0000000000000002", new ClientProgress(8, new HybridTimestamp(1_700_000_000_000, 8, 1)), Times.Start, CancellationToken.None);
        });
        await WriteAsync(store, tx => tx.WriteClientProgressAsync("alice", "0000000000000001", new ClientProgress(6, new HybridTimestamp(1_700_000_000_000, 6, 1)), Times.Start, CancellationToken.None).AsTask());

        await using var read = await store.BeginAsync(CancellationToken.None);
        var alice = await read.ReadClientProgressAsync("alice", "0000000000000001", CancellationToken.None);
        Assert.Equal((6L, new HybridTimestamp(1_700_000_000_000, 6, 1)), (alice.LastMutationId, alice.LastHlc));
        Assert.Equal(8, (await read.ReadClientProgressAsync("alice", "0000000000000002", CancellationToken.None)).LastMutationId);
        Assert.Equal(0, (await read.ReadClientProgressAsync("mallory", "0000000000000001", CancellationToken.None)).LastMutationId);
    }

    [Fact]
    public async Task A_clients_recent_mutations_are_kept_with_its_progress()
    {
        var store = await OpenAsync();
        AppliedMutation[] recent = [new(4, new HybridTimestamp(1_700_000_000_004, 0, 9)), new(5, new HybridTimestamp(1_700_000_000_005, 2, 9))];
        await WriteAsync(store, tx => tx.WriteClientProgressAsync("p", "0000000000000009", new ClientProgress(5, recent[1].Hlc) { Recent = recent }, Times.Start, CancellationToken.None).AsTask());

        await using var read = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(recent, (await read.ReadClientProgressAsync("p", "0000000000000009", CancellationToken.None)).Recent);
        Assert.Empty((await read.ReadClientProgressAsync("p", "000000000000000a", CancellationToken.None)).Recent);
    }

    [Fact]
    public async Task Conflicts_are_found_by_id_and_only_open_ones_are_listed_per_scope()
    {
        var store = await OpenAsync();
        await WriteAsync(store, async tx =>
        {
            await tx.WriteConflictAsync(Conflict("open-s", 1), null, "apikey:a", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("done-s", 2, status: ConflictStatus.Resolved) with { Resolution = "server" }, Times.Start, "apikey:a", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("open-t", 1, scope: "t"), null, "apikey:a", CancellationToken.None);
        });

        Assert.Equal(["open-s"], (await store.ReadOpenConflictsAsync("s", 0, 10, int.MaxValue, CancellationToken.None)).Conflicts.Select(c => c.Id));
        Assert.Equal("server", (await store.ReadConflictAsync("done-s", CancellationToken.None))!.Resolution);
        Assert.Equal("t", (await store.ReadConflictAsync("open-t", CancellationToken.None))!.Scope);
        await using var tx2 = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(ConflictStatus.Open, (await tx2.ReadConflictAsync("open-s", CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task A_transaction_finds_a_devices_open_conflict_by_principal_and_counts_those_of_a_document_and_a_scope()
    {
        var store = await OpenAsync();
        await WriteAsync(store, async tx =>
        {
            await tx.WriteConflictAsync(Conflict("b", 2) with { ClientId = "00000000000000b0" }, null, "apikey:b", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("a", 1), null, "apikey:a", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("done", 3, status: ConflictStatus.Resolved) with { Resolution = "server" }, Times.Start, "apikey:a", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("other-doc", 4) with { DocumentId = "d2" }, null, "apikey:a", CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("other-scope", 1, scope: "t"), null, "apikey:a", CancellationToken.None);
        });

        await using var transaction = await store.BeginAsync(CancellationToken.None);
        var d1 = new DocumentKey("s", "c", "d1");
        var client = Conflict("x", 0).ClientId;
        Assert.Equal("a", (await transaction.ReadOpenConflictAsync(d1, "apikey:a", client, CancellationToken.None))?.Id);

        // Another principal sending the same client id does not find the device's record.
        Assert.Null(await transaction.ReadOpenConflictAsync(d1, "apikey:b", client, CancellationToken.None));
        Assert.Equal("b", (await transaction.ReadOpenConflictAsync(d1, "apikey:b", "00000000000000b0", CancellationToken.None))?.Id);
        Assert.Null(await transaction.ReadOpenConflictAsync(new DocumentKey("s", "c", "none"), "apikey:a", client, CancellationToken.None));
        Assert.Equal(2, await transaction.CountOpenConflictsAsync(d1, CancellationToken.None));
        Assert.Equal(3, await transaction.CountOpenConflictsAsync("s", CancellationToken.None));
        Assert.Equal(1, await transaction.CountOpenConflictsAsync("t", CancellationToken.None));
        Assert.Equal(0, await transaction.CountOpenConflictsAsync("none", CancellationToken.None));

        // A record this transaction resolved is no longer open to it, and its owner stays when a write does not name one.
        await transaction.WriteConflictAsync(Conflict("a", 5, status: ConflictStatus.Resolved) with { Resolution = "server" }, Times.Start, null, CancellationToken.None);
        Assert.Null(await transaction.ReadOpenConflictAsync(d1, "apikey:a", client, CancellationToken.None));
        await transaction.WriteConflictAsync(Conflict("b", 6) with { ClientId = "00000000000000b0" }, null, null, CancellationToken.None);
        Assert.Equal(6, (await transaction.ReadOpenConflictAsync(d1, "apikey:b", "00000000000000b0", CancellationToken.None))?.Revision);
        await transaction.CommitAsync(CancellationToken.None);
        await transaction.DisposeAsync();
        await using var after = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(6, (await after.ReadOpenConflictAsync(d1, "apikey:b", "00000000000000b0", CancellationToken.None))?.Revision);
    }

    [Fact]
    public async Task Everything_committed_survives_closing_and_opening_the_store()
    {
        var store = await OpenAsync("durable");
        var clock = new HybridTimestamp(1_700_000_123_456, 7, 42);
        await WriteAsync(store, async tx =>
        {
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "d"), State(1, "kept"), null, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("s", 1, CancellationToken.None);
            await tx.WriteClientProgressAsync("p", "0000000000000001", new ClientProgress(3, new HybridTimestamp(1_700_000_000_000, 3, 1)), Times.Start, CancellationToken.None);
            await tx.WriteConflictAsync(Conflict("k", 1), null, "apikey:a", CancellationToken.None);
            await tx.WriteClockAsync(clock, CancellationToken.None);
        });
        await ReopenAsync(store);

        var again = await OpenAsync("durable");
        Assert.Equal(clock, await again.ReadClockAsync(CancellationToken.None));
        var page = await again.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None);
        Assert.Equal("kept", Assert.Single(page.Documents).State.Fields["v"].Value.GetString());
        Assert.Equal(1, page.ScopeRevision);
        Assert.NotNull(await again.ReadConflictAsync("k", CancellationToken.None));
        await using var tx = await again.BeginAsync(CancellationToken.None);
        Assert.Equal(3, (await tx.ReadClientProgressAsync("p", "0000000000000001", CancellationToken.None)).LastMutationId);
    }

    [Fact]
    public async Task A_store_has_an_epoch_from_its_creation_that_survives_reopening_and_changes_only_when_rotated()
    {
        var store = await OpenAsync("epoch");
        var first = await store.ReadEpochAsync(CancellationToken.None);
        Assert.False(string.IsNullOrWhiteSpace(first));
        Assert.NotEqual(first, await (await OpenAsync("other")).ReadEpochAsync(CancellationToken.None));
        await WriteAsync(store, tx => tx.WriteScopeRevisionAsync("s", 1, CancellationToken.None).AsTask());
        Assert.Equal(first, await store.ReadEpochAsync(CancellationToken.None));
        await ReopenAsync(store);

        store = await OpenAsync("epoch");
        Assert.Equal(first, await store.ReadEpochAsync(CancellationToken.None));
        var rotated = await store.RotateEpochAsync(CancellationToken.None);
        Assert.NotEqual(first, rotated);
        Assert.Equal(rotated, await store.ReadEpochAsync(CancellationToken.None));

        // Rotating changes the epoch, nothing else; and the new one is durable.
        Assert.Equal(1, (await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None)).ScopeRevision);
        await ReopenAsync(store);
        Assert.Equal(rotated, await (await OpenAsync("epoch")).ReadEpochAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Compaction_removes_old_tombstones_raises_the_min_valid_cursor_and_moves_what_stays_above_it()
    {
        var store = await OpenAsync();
        var old = Times.Start;
        var young = Times.Start.AddDays(10);
        await WriteAsync(store, async tx =>
        {
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "live"), State(1), null, CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "old-tombstone"), State(2, deleted: true), old, CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", "young-tombstone"), State(3, deleted: true), young, CancellationToken.None);
            await tx.WriteDocumentAsync(new DocumentKey("t", "c", "other-scope"), State(1, deleted: true), young, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("s", 3, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("t", 1, CancellationToken.None);
        });

        var result = await store.CompactAsync(Times.Start.AddDays(5), DateTimeOffset.MinValue, CancellationToken.None);

        Assert.Equal(1, result.TombstonesRemoved);
        Assert.Equal(1, result.ScopesAffected);
        var page = await store.ReadChangesAsync("s", 0, 10, int.MaxValue, CancellationToken.None);
        Assert.Equal(2, page.MinValidCursor);
        Assert.DoesNotContain(page.Documents, d => d.DocumentId == "old-tombstone");
        Assert.Contains(page.Documents, d => d.DocumentId == "young-tombstone");
        var live = Assert.Single(page.Documents, d => d.DocumentId == "live");
        Assert.True(live.State.Revision > page.MinValidCursor, "an item left at or below the min valid cursor would reset every download");
        Assert.True(page.ScopeRevision >= live.State.Revision);
        Assert.Single((await store.ReadChangesAsync("t", 0, 10, int.MaxValue, CancellationToken.None)).Documents);
    }

    [Fact]
    public async Task Compaction_removes_client_progress_unused_since_the_client_cutoff_and_keeps_the_rest()
    {
        var store = await OpenAsync();
        var hlc = new HybridTimestamp(1_700_000_000_000, 1, 1);
        await WriteAsync(store, async tx =>
        {
            await tx.WriteClientProgressAsync("apikey:alice", "0000000000000001", new ClientProgress(1, hlc), Times.Start, CancellationToken.None);
            await tx.WriteClientProgressAsync("apikey:alice", "0000000000000002", new ClientProgress(2, hlc), Times.Start.AddDays(10), CancellationToken.None);
            await tx.WriteClientProgressAsync("jwt:https://login.example.com/|bob", "0000000000000001", new ClientProgress(3, hlc), Times.Start.AddDays(2), CancellationToken.None);
        });
        // Used again later: the record's time moves on.
        await WriteAsync(store, tx => tx.WriteClientProgressAsync("apikey:alice", "0000000000000001", new ClientProgress(4, hlc), Times.Start.AddDays(20), CancellationToken.None).AsTask());

        var result = await store.CompactAsync(Times.Start, Times.Start.AddDays(5), CancellationToken.None);

        Assert.Equal(new CompactionResult { TombstonesRemoved = 0, ConflictsRemoved = 0, ScopesAffected = 0, ItemsMoved = 0, ClientsRemoved = 1 }, result);
        await using var read = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(4, (await read.ReadClientProgressAsync("apikey:alice", "0000000000000001", CancellationToken.None)).LastMutationId);
        Assert.Equal(2, (await read.ReadClientProgressAsync("apikey:alice", "0000000000000002", CancellationToken.None)).LastMutationId);
        Assert.Equal(ClientProgress.None, await read.ReadClientProgressAsync("jwt:https://login.example.com/|bob", "0000000000000001", CancellationToken.None));
    }

    [Fact]
    public async Task Compaction_removes_client_progress_in_batches()
    {
        var store = await OpenAsync();
        var hlc = new HybridTimestamp(1_700_000_000_000, 1, 1);
        await WriteAsync(store, async tx =>
        {
            for (var i = 0; i < 2_500; i++)
            {
                await tx.WriteClientProgressAsync("apikey:many", i.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), new ClientProgress(1, hlc), Times.Start, CancellationToken.None);
            }

            await tx.WriteClientProgressAsync("apikey:many", "ffffffffffffffff", new ClientProgress(1, hlc), Times.Start.AddDays(9), CancellationToken.None);
        });

        var result = await store.CompactAsync(Times.Start, Times.Start.AddDays(1), CancellationToken.None);

        Assert.Equal(2_500, result.ClientsRemoved);
        await using var read = await store.BeginAsync(CancellationToken.None);
        Assert.Equal(1, (await read.ReadClientProgressAsync("apikey:many", "ffffffffffffffff", CancellationToken.None)).LastMutationId);
    }

    [Fact]
    public async Task Former_client_progress_is_the_highest_of_the_former_keys_and_reading_it_creates_nothing()
    {
        var store = await OpenAsync();
        var hlc = new HybridTimestamp(1_700_000_000_000, 1, 1);
        var recent = new[] { new AppliedMutation(9, hlc) };
        await WriteAsync(store, async tx =>
        {
            await tx.WriteClientProgressAsync("legacy:AAAA", "0000000000000001", new ClientProgress(5, hlc), Times.Start, CancellationToken.None);
            await tx.WriteClientProgressAsync("legacy:BBBB", "0000000000000001", new ClientProgress(9, hlc) { Recent = recent }, Times.Start, CancellationToken.None);
            await tx.WriteClientProgressAsync("legacy:CCCC", "0000000000000002", new ClientProgress(50, hlc), Times.Start, CancellationToken.None);
        });

        await using (var tx = await store.BeginAsync(CancellationToken.None))
        {
            var found = await tx.ReadFormerClientProgressAsync(["legacy:AAAA", "legacy:BBBB", "legacy:NONE"], "0000000000000001", CancellationToken.None);
            Assert.Equal(9, found.LastMutationId);
            Assert.Equal(hlc, found.LastHlc);
            Assert.Equal(recent, found.Recent);
            Assert.Equal(ClientProgress.None, await tx.ReadFormerClientProgressAsync(["legacy:NONE"], "0000000000000001", CancellationToken.None));
            Assert.Equal(ClientProgress.None, await tx.ReadFormerClientProgressAsync([], "0000000000000001", CancellationToken.None));
            await tx.CommitAsync(CancellationToken.None);
        }

        // Nothing was made for the key that had no record: a compaction that removes every record finds the three written.
        Assert.Equal(3, (await store.CompactAsync(Times.Start, DateTimeOffset.MaxValue, CancellationToken.None)).ClientsRemoved);
    }

    [Fact]
    public async Task Concurrent_writers_of_one_scope_commit_in_revision_order()
    {
        var store = await OpenAsync();
        const int writers = 8;

        // Each writer takes the scope's next revision and writes a document at it, as the engine does.
        await Task.WhenAll(Enumerable.Range(0, writers).Select(i => Task.Run(async () =>
        {
            await using var tx = await store.BeginAsync(CancellationToken.None);
            var next = await tx.ReadScopeRevisionAsync("s", CancellationToken.None) + 1;
            await tx.WriteDocumentAsync(new DocumentKey("s", "c", $"d{i}"), State(next), null, CancellationToken.None);
            await tx.WriteScopeRevisionAsync("s", next, CancellationToken.None);
            await tx.CommitAsync(CancellationToken.None);
        })));

        var page = await store.ReadChangesAsync("s", 0, 100, int.MaxValue, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, writers).Select(r => (long)r), page.Documents.Select(d => d.State.Revision));
        Assert.Equal(writers, page.ScopeRevision);
    }
}
