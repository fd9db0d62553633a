using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Tests.Shared;

namespace Converge.Cli.Tests;

/// <summary>Two `converge serve --postgres` nodes; one is killed in the middle of a device's push.</summary>
public sealed class ClusterFailoverTests : IDisposable
{
    private const int Counters = 50;
    private const int Rounds = 40;
    private readonly string _folder = Directory.CreateTempSubdirectory("converge-failover-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_node_killed_mid_push_loses_nothing_and_the_retry_on_the_other_node_applies_nothing_twice()
    {
        var database = await (await PostgresServer.GetAsync()).CreateDatabaseAsync();
        var (url1, url2) = ($"http://127.0.0.1:{Converge.FreePort()}", $"http://127.0.0.1:{Converge.FreePort()}");
        using var node1 = Converge.Start("serve", "--postgres", database, "--urls", url1, "--api-key", "dev:k=team:1");
        using var node2 = Converge.Start("serve", "--postgres", database, "--urls", url2, "--api-key", "dev:k=team:1");
        try
        {
            await CommandTests.WaitForServerAsync(url1);
            await CommandTests.WaitForServerAsync(url2);

            // 2,000 increments in the outbox, pushed in batches of 100: a retry applied twice would show in the sums.
            var device = Path.Combine(_folder, "device.db");
            await using (var client = await OpenAsync(device, url1))
            {
                for (var round = 0; round < Rounds; round++)
                {
                    await client.WriteBatchAsync(batch =>
                    {
                        for (var c = 0; c < Counters; c++)
                        {
                            batch.Increment(client.Collection<JsonObject>("counters"), $"c{c}", "n", round + 1);
                        }
                    });
                }

                // Node 1 dies by SIGKILL as soon as the first batch is answered; the next one is on its way by then.
                var killed = false;
                var progress = new Progress(p =>
                {
                    if (p.Phase == SyncPhase.Push && !killed)
                    {
                        killed = true;
                        node1.Kill();
                    }
                });
                await Assert.ThrowsAnyAsync<Exception>(() => client.SyncAsync(progress));
                var pending = await client.GetPendingCountAsync();
                Assert.InRange(pending, 1, (Counters * Rounds) - 100);
            }

            // The device comes back through node 2.
            await using (var client = await OpenAsync(device, url2))
            {
                await client.SyncAsync();
                Assert.Equal(0, await client.GetPendingCountAsync());
            }

            await using var reader = await OpenAsync(Path.Combine(_folder, "reader.db"), url2);
            await reader.SyncAsync();
            var expected = Rounds * (Rounds + 1) / 2;
            for (var c = 0; c < Counters; c++)
            {
                Assert.Equal(expected, (await reader.Collection<JsonObject>("counters").GetAsync($"c{c}"))!["n"]!.GetValue<long>());
            }
        }
        finally
        {
            node1.Kill();
            node2.Kill();
            await node1.WaitForExitAsync();
            await node2.WaitForExitAsync();
            await (await PostgresServer.GetAsync()).DropDatabaseAsync(database);
        }
    }

    private static Task<ConvergeClient> OpenAsync(string path, string url)
    {
        var options = new ConvergeClientOptions
        {
            DatabasePath = path,
            ServerUrl = new Uri(url),
            AccessTokenProvider = _ => ValueTask.FromResult<string?>("k"),
            PushBatchSize = 100,
        };
        options.Scopes.Add("team:1");
        return ConvergeClient.OpenAsync(options);
    }

    /// <summary>Runs the callback on the reporting thread, at once (not posted like <see cref="Progress{T}"/>).</summary>
    private sealed class Progress(Action<SyncProgress> report) : IProgress<SyncProgress>
    {
        public void Report(SyncProgress value) => report(value);
    }
}
