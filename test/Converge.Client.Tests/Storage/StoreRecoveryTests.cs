using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Client.Tests.Storage;

/// <summary>Local writes keep the next mutation id and the clock in memory; what a restart finds must still move forward.</summary>
public sealed class StoreRecoveryTests : FakeServerTests
{

    [Fact]
    public async Task After_a_push_drained_the_outbox_a_restart_with_an_earlier_wall_clock_keeps_ids_and_timestamps_increasing()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        HybridTimestamp last;
        await using (var client = await Folder.OpenAsync(FakeServer.Url, o => o.TimeProvider = time))
        {
            var docs = client.Collection<JsonObject>("docs");
            await client.WriteBatchAsync(b => b.Put(docs, "a", new JsonObject { ["x"] = 1 }).Put(docs, "b", new JsonObject { ["x"] = 2 }));
            last = Inspect.Outbox(client)[^1].Hlc;
            await client.SyncAsync();
            Assert.Equal(0, await client.GetPendingCountAsync());
        }

        var earlier = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using (var client = await Folder.OpenAsync(FakeServer.Url, o => o.TimeProvider = earlier))
        {
            await client.Collection<JsonObject>("docs").PutAsync("c", new JsonObject { ["x"] = 3 });
            var mutation = Assert.Single(Inspect.Outbox(client));
            Assert.Equal(3, mutation.Id);
            Assert.True(mutation.Hlc > last, $"{mutation.Hlc} should follow {last}");
        }
    }

    [Fact]
    public async Task A_rolled_back_batch_gives_its_mutation_ids_back_and_a_restart_continues_after_the_outbox()
    {
        await using (var client = await Folder.OpenAsync())
        {
            var docs = client.Collection<JsonObject>("docs");
            await docs.PutAsync("a", new JsonObject { ["x"] = 1 });
            await docs.DeleteAsync("a");
            await Assert.ThrowsAsync<InvalidOperationException>(() => client.WriteBatchAsync(b => b
                .Put(docs, "b", new JsonObject { ["x"] = 1 })
                .Patch(docs, "a", new JsonObject { ["x"] = 2 })));
            await docs.PutAsync("c", new JsonObject { ["x"] = 1 });
            Assert.Equal([1L, 2, 3], Inspect.Outbox(client).Select(m => m.Id));
        }

        await using (var client = await Folder.OpenAsync())
        {
            await client.Collection<JsonObject>("docs").PutAsync("d", new JsonObject { ["x"] = 1 });
            Assert.Equal([1L, 2, 3, 4], Inspect.Outbox(client).Select(m => m.Id));
        }
    }
}
