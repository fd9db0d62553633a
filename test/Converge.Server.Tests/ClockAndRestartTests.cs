using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Time.Testing;

namespace Converge.Server.Tests;

public class ClockAndRestartTests
{
    [Fact]
    public async Task A_write_stamped_in_2099_is_restamped_and_does_not_win_the_next_conflict()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var honest = new Device(time);
        var future = new Device(new FakeTimeProvider(new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        await server.Alice.PushAsync(honest.Batch(honest.Put("team:1", "notes", "n", 0, """{"title":"original"}""")));

        var fromFuture = await server.Bob.PushAsync(future.Batch(future.Patch("team:1", "notes", "n", 1, """{"title":"from 2099"}""")));
        time.Advance(TimeSpan.FromSeconds(1));
        var honestEdit = honest.Patch("team:1", "notes", "n", 1, """{"title":"honest, one second later"}""");
        var fromHonest = await server.Alice.PushAsync(honest.Batch(honestEdit));

        var restamped = fromFuture.Results[0].Restamped;
        Assert.NotNull(restamped);
        Assert.Equal(Times.Start.ToUnixTimeMilliseconds(), restamped.Value.Physical);
        Assert.True(fromFuture.Clock.Physical < Times.Start.AddMinutes(1).ToUnixTimeMilliseconds(), "The server clock did not follow the device to 2099.");
        Assert.Equal(MutationStatus.Applied, fromHonest.Results[0].Status);
        Assert.Null(fromHonest.Results[0].Restamped);
        var state = Assert.Single((await server.Alice.PullAsync("team:1")).Changes).State;
        Assert.Equal("honest, one second later", state.Fields["title"].Value.GetString());
        Assert.Equal(honestEdit.Hlc, state.Fields["title"].Hlc);
    }

    [Fact]
    public async Task A_timestamp_within_the_drift_bound_is_kept_and_moves_the_server_clock()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var ahead = new Device(new FakeTimeProvider(Times.Start + TimeSpan.FromSeconds(30)));

        var response = await server.Alice.PushAsync(ahead.Batch(ahead.Put("team:1", "notes", "n", 0, """{"title":"t"}""")));

        Assert.Null(response.Results[0].Restamped);
        Assert.True(response.Clock.Physical >= (Times.Start + TimeSpan.FromSeconds(30)).ToUnixTimeMilliseconds());
    }

    [Fact]
    public async Task A_restarted_server_keeps_its_data_its_idempotency_and_a_clock_that_never_goes_back()
    {
        var time = Times.NewFake();
        var directory = Directory.CreateTempSubdirectory("converge-server-restart-").FullName;
        try
        {
            var device = new Device(time);
            var batch = device.Batch(device.Put("user:alice", "notes", "n1", 0, """{"title":"kept"}"""), device.Increment("user:alice", "c", "c", """{"n":1}"""));
            PushResponse first;
            string snapshot;
            HybridTimestamp lastClock;
            await using (var server = await TestServer.StartAsync(time, directory: directory))
            {
                first = await server.Alice.PushAsync(batch);
                snapshot = await server.Alice.SnapshotAsync("user:alice");
                lastClock = (await server.Alice.PullAsync("user:alice")).Clock;
                await server.StopAsync();
            }

            // The machine's clock went back an hour across the restart.
            var earlier = new FakeTimeProvider(Times.Start - TimeSpan.FromHours(1));
            await using (var server = await TestServer.StartAsync(earlier, directory: directory))
            {
                var retried = await server.Alice.PushAsync(batch);
                var pull = await server.Alice.PullAsync("user:alice");

                Assert.All(first.Results, r => Assert.Equal(MutationStatus.Applied, r.Status));
                Assert.All(retried.Results, r => Assert.Equal(MutationStatus.Duplicate, r.Status));
                Assert.Equal(snapshot, await server.Alice.SnapshotAsync("user:alice"));
                Assert.True(retried.Clock > lastClock, $"Clock went back: {retried.Clock} after {lastClock}.");
                Assert.True(pull.Clock > retried.Clock);
                Assert.NotEqual(first.Clock.Node, retried.Clock.Node); // each server process stamps with a node id of its own

                var next = await server.Alice.PushAsync(device.Batch(device.Patch("user:alice", "notes", "n1", 1, """{"title":"after restart"}""")));
                Assert.Equal(3, next.Results[0].Revision);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Pulls_carry_the_store_epoch_which_a_restart_keeps_and_a_rotation_for_a_restored_store_changes()
    {
        var time = Times.NewFake();
        var directory = Directory.CreateTempSubdirectory("converge-server-epoch-").FullName;
        try
        {
            var device = new Device(time);
            string epoch;
            await using (var server = await TestServer.StartAsync(time, directory: directory))
            {
                await server.Alice.PushAsync(device.Batch(device.Put("user:alice", "notes", "n1", 0, """{"title":"kept"}""")));
                epoch = (await server.Alice.PullAsync("user:alice")).Epoch!;
                Assert.False(string.IsNullOrWhiteSpace(epoch));
                Assert.Equal(epoch, (await server.Alice.PullAsync("team:1", 0)).Epoch);
                await server.StopAsync();
            }

            await using (var server = await TestServer.StartAsync(time, directory: directory))
            {
                Assert.Equal(epoch, (await server.Alice.PullAsync("user:alice", 1)).Epoch);
                await server.StopAsync();
            }

            // What `converge serve --restored` does before the server starts on a database restored from a backup.
            var rotated = await ConvergeStoreMaintenance.RotateEpochAsync(Path.Combine(directory, "sync.db"));
            Assert.NotEqual(epoch, rotated);
            await using (var server = await TestServer.StartAsync(time, directory: directory))
            {
                var pull = await server.Alice.PullAsync("user:alice");
                Assert.Equal(rotated, pull.Epoch);
                Assert.Single(pull.Changes);
            }

            await Assert.ThrowsAsync<FileNotFoundException>(() => ConvergeStoreMaintenance.RotateEpochAsync(Path.Combine(directory, "missing.db")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
