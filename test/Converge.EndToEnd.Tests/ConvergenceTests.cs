using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Protocol.Documents;
using CsCheck;

namespace Converge.EndToEnd.Tests;

/// <summary>Replicas editing offline in random interleavings of edits and syncs end with identical documents.</summary>
public sealed class ConvergenceTests
{
    private static readonly string[] Ids = ["d0", "d1", "d2", "d3"];

    /// <summary>One step of a run: replica <c>Replica</c> makes an edit, or syncs.</summary>
    public sealed record Step(int Replica, int Kind, int Doc, int Value, bool Flag)
    {
        public override string ToString() => $"r{Replica}:{Kind switch { 0 => "put", 1 => "patch-title", 2 => "patch-done", 3 => "delete", 4 => "increment", _ => "sync" }}({Ids[Doc]},{Value},{Flag})";
    }

    private static Gen<Step[]> Steps(int replicas) =>
        Gen.Select(Gen.Int[0, replicas - 1], Gen.Int[0, 6], Gen.Int[0, Ids.Length - 1], Gen.Int[0, 9], Gen.Bool, (r, k, d, v, f) => new Step(r, k, d, v, f))
            .Array[1, 40];

    [Theory]
    [InlineData(2, ConflictPolicy.LastWriterWins, DeleteRule.DeleteWins)]
    [InlineData(5, ConflictPolicy.LastWriterWins, DeleteRule.DeleteWins)]
    [InlineData(3, ConflictPolicy.LastWriterWins, DeleteRule.UpdateWins)]
    [InlineData(3, ConflictPolicy.ServerWins, DeleteRule.DeleteWins)]
    [InlineData(3, ConflictPolicy.ClientWins, DeleteRule.UpdateWins)]
    public async Task Replicas_editing_offline_in_random_interleavings_converge(int replicas, ConflictPolicy policy, DeleteRule delete)
    {
        await using var server = await SyncServer.StartAsync(Rules.For("todos", policy, delete));
        var run = 0;
        await Steps(replicas).SampleAsync(
            async steps =>
            {
                // Each sample gets its own scope, so one server serves every sample.
                var scope = $"s-run{run++}";
                var clients = new ConvergeClient[replicas];
                for (var i = 0; i < replicas; i++)
                {
                    clients[i] = await server.OpenClientAsync($"{scope}-r{i}", scope);
                }

                // A shared starting point every replica has synced.
                var seed = clients[0].Collection<Todo>("todos");
                foreach (var id in Ids)
                {
                    await seed.PutAsync(id, new Todo { Title = "start " + id, Count = 1 });
                }

                foreach (var c in clients)
                {
                    await c.SyncAsync();
                }

                foreach (var step in steps)
                {
                    await ApplyAsync(clients[step.Replica], step);
                }

                // Everyone pushes, then everyone pulls what the others pushed.
                foreach (var c in clients)
                {
                    await c.SyncAsync();
                }

                foreach (var c in clients)
                {
                    await c.SyncAsync();
                }

                var late = await server.OpenClientAsync($"{scope}-late", scope);
                await late.SyncAsync();
                var expected = await SnapshotAsync(late);
                for (var i = 0; i < replicas; i++)
                {
                    Assert.Equal(0, await clients[i].GetPendingCountAsync());
                    Assert.Equal(expected, await SnapshotAsync(clients[i]));
                }
            },
            iter: 12,
            threads: 1);
    }

    private static async Task ApplyAsync(ConvergeClient client, Step step)
    {
        var todos = client.Collection<Todo>("todos");
        var id = Ids[step.Doc];
        try
        {
            switch (step.Kind)
            {
                case 0:
                    var current = await todos.GetAsync(id);
                    await todos.PutAsync(id, new Todo { Title = $"put {step.Value}", Done = step.Flag, Note = step.Flag ? "n" + step.Value : null, Count = current?.Count ?? 0 });
                    break;
                case 1:
                    await todos.PatchAsync(id, new JsonObject { ["title"] = $"patched {step.Value}" });
                    break;
                case 2:
                    await todos.PatchAsync(id, new JsonObject { ["done"] = step.Flag });
                    break;
                case 3:
                    await todos.DeleteAsync(id);
                    break;
                case 4:
                    await todos.IncrementAsync(id, "count", step.Value - 4);
                    break;
                default:
                    await client.SyncAsync();
                    break;
            }
        }
        catch (InvalidOperationException)
        {
            // A patch or increment of a document deleted here: the app would not offer it.
        }
    }

    private static async Task<string> SnapshotAsync(ConvergeClient client)
    {
        var page = await client.Collection<JsonObject>("todos").Query().OrderById().Limit(1000).ToPageAsync();
        var all = new JsonObject();
        foreach (var doc in page.Items)
        {
            var sorted = new JsonObject();
            foreach (var (name, value) in doc.Value.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                sorted[name] = value?.DeepClone();
            }

            all[doc.Id] = sorted;
        }

        return all.ToJsonString();
    }
}
