using System.Net;
using System.Text;
using Converge.Protocol.Messages;
using Converge.Tests.Shared;

namespace Converge.Server.Tests.Stores;

/// <summary>
/// NUL (<c>\u0000</c>), which PostgreSQL text cannot hold: inside values it is stored and pulled back as written, on
/// either store; in a scope, collection, field name, document id or conflict id it is refused with a 4xx, never a 500.
/// </summary>
public sealed class NulTextTests : IAsyncLifetime
{
    private const string Scope = "user:alice";

    private readonly List<string> _databases = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await (await PostgresServer.GetAsync()).DropDatabaseAsync(database);
        }
    }

    private async Task<TestServer> StartAsync(string store, Microsoft.Extensions.Time.Testing.FakeTimeProvider time)
    {
        if (store != "postgres")
        {
            return await TestServer.StartAsync(time);
        }

        var database = await (await PostgresServer.GetAsync()).CreateDatabaseAsync();
        _databases.Add(database);
        return await TestServer.StartAsync(time, postgres: database);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task NUL_in_values_and_their_nested_names_is_stored_and_pulled_back_as_written(string store)
    {
        var time = Times.NewFake();
        await using var server = await StartAsync(store, time);
        var device = new Device(time);

        var push = await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "n", 0, """{"t":"a\u0000b","o":{"k\u0000":["\u0000"]}}""")));

        Assert.Equal(MutationStatus.Applied, push.Results[0].Status);
        var state = Assert.Single((await server.Alice.PullAsync(Scope)).Changes).State;
        Assert.Equal("a\0b", state.Fields["t"].Value.GetString());
        Assert.Equal("\0", state.Fields["o"].Value.GetProperty("k\0")[0].GetString());
    }

    [Theory]
    [InlineData("sqlite", "collection")]
    [InlineData("sqlite", "doc")]
    [InlineData("sqlite", "field")]
    [InlineData("sqlite", "conflict")]
    [InlineData("postgres", "collection")]
    [InlineData("postgres", "doc")]
    [InlineData("postgres", "field")]
    [InlineData("postgres", "conflict")]
    public async Task NUL_in_a_name_an_id_or_a_conflict_id_is_refused_and_changes_nothing(string store, string place)
    {
        var time = Times.NewFake();
        await using var server = await StartAsync(store, time);
        var device = new Device(time);
        var mutation = place switch
        {
            "collection" => device.Put(Scope, "no\0tes", "n", 0, """{"t":1}"""),
            "doc" => device.Put(Scope, "notes", "n\0", 0, """{"t":1}"""),
            "field" => device.Put(Scope, "notes", "n", 0, """{"t\u0000":1}"""),
            _ => device.Resolve(Scope, "notes", "n", "c\0", """{"t":1}"""),
        };

        using var response = await server.Alice.PostAsync("v1/push", Api.Json(device.Batch(mutation)));

        await Api.AssertProblemAsync(response, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        Assert.Empty((await server.Alice.PullAsync(Scope)).Changes);
        Assert.Equal(MutationStatus.Applied, (await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "n", 0, """{"t":1}""") with { Id = 1 }))).Results[0].Status);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task NUL_or_other_bad_text_in_a_conflict_id_or_a_scope_of_the_url_is_refused_without_a_server_error(string store)
    {
        var time = Times.NewFake();
        await using var server = await StartAsync(store, time);
        var resolve = Api.Raw(Encoding.UTF8.GetBytes("""{"choice":"server"}"""));

        using var nul = await server.Alice.PostAsync("v1/conflicts/c%00/resolve", resolve);
        using var control = await server.Alice.PostAsync("v1/conflicts/%1B%0A/resolve", resolve);
        using var notUtf8 = await server.Alice.PostAsync("v1/conflicts/%FF%ED%A0%80/resolve", resolve);
        using var pull = await server.Alice.GetAsync("v1/pull?scope=user%3Aalice%00");
        using var pullNotUtf8 = await server.Alice.GetAsync("v1/pull?scope=user%3Aalice%FF");

        foreach (var response in new[] { nul, control, notUtf8 })
        {
            Assert.True((int)response.StatusCode is >= 400 and < 500, $"{response.RequestMessage!.RequestUri} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        await Api.AssertProblemAsync(pull, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        await Api.AssertProblemAsync(pullNotUtf8, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
        Assert.Empty((await server.Alice.PullAsync(Scope)).Changes);
    }
}
