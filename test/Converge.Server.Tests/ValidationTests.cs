using System.Net;
using System.Text;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>Every refused request answers the right status and code, and changes nothing.</summary>
public class ValidationTests
{
    private const string Scope = "user:alice";

    private static async Task RefusedAsync(Func<TestServer, Device, Task<HttpResponseMessage>> send, HttpStatusCode status, string code, Action<ConvergeServerOptions>? configure = null)
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, configure);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "existing", 0, """{"title":"kept"}""")));
        var before = await server.Alice.SnapshotAsync(Scope);

        using var response = await send(server, device);

        await Api.AssertProblemAsync(response, status, code);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));
        // The client's progress is untouched: its next mutation id still applies.
        var next = await server.Alice.PushAsync(device.Batch(device.Patch(Scope, "notes", "existing", 1, """{"title":"next"}""") with { Id = 2 }));
        Assert.Equal(MutationStatus.Applied, next.Results[0].Status);
    }

    [Fact]
    public async Task A_write_that_would_grow_a_document_past_its_bound_is_rejected_and_changes_nothing()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Limits = new ProtocolLimits { MaxFieldsPerMutation = 2, MaxFieldsPerDocument = 3 });
        var device = new Device(time);
        var first = await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "n", 0, """{"a":1,"b":2}""")));
        var before = await server.Alice.SnapshotAsync(Scope);

        var grow = await server.Alice.PushAsync(device.Batch(device.Patch(Scope, "notes", "n", first.Results[0].Revision, """{"c":3,"d":4}""")));

        Assert.Equal(MutationStatus.Rejected, grow.Results[0].Status);
        Assert.Contains("at most 3", grow.Results[0].Reason, StringComparison.Ordinal);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));
    }

    [Fact]
    public async Task Reused_mutation_ids_with_newer_timestamps_are_refused_while_a_true_retry_is_a_duplicate()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        var first = device.Batch(device.Put(Scope, "notes", "a", 0, """{"title":"one"}"""), device.Put(Scope, "notes", "b", 0, """{"title":"two"}"""));
        await server.Alice.PushAsync(first);
        var before = await server.Alice.SnapshotAsync(Scope);

        // The device's store is restored from a backup: the same client id numbers new writes from 1 again.
        time.Advance(TimeSpan.FromSeconds(5));
        var restored = new Device(time, device.Node);
        using var reused = await server.Alice.PostAsync("v1/push", Api.Json(restored.Batch(restored.Put(Scope, "notes", "c", 0, """{"title":"after restore"}"""))));
        await Api.AssertProblemAsync(reused, HttpStatusCode.Conflict, ProtocolErrorCodes.ClientIdReused);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));

        var retry = await server.Alice.PushAsync(first);
        Assert.All(retry.Results, r => Assert.Equal(MutationStatus.Duplicate, r.Status));
    }

    [Fact]
    public async Task A_copy_whose_writes_are_older_than_the_originals_is_refused_not_dropped()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var original = new Device(time);
        await server.Alice.PushAsync(original.Batch(original.Put(Scope, "notes", "a", 0, """{"v":1}""")));

        // The store is copied: both copies number their next writes 2, 3. The copy writes first, the original pushes first.
        var copy = new Device(time, original.Node);
        copy.Put(Scope, "notes", "skip", 0, "{}");
        var copyWrites = copy.Batch(copy.Put(Scope, "notes", "from-copy", 0, """{"v":2}"""), copy.Put(Scope, "notes", "from-copy-2", 0, """{"v":3}"""));
        time.Advance(TimeSpan.FromSeconds(1));
        var originalWrites = original.Batch(original.Put(Scope, "notes", "from-original", 0, """{"v":2}"""), original.Put(Scope, "notes", "from-original-2", 0, """{"v":3}"""));
        await server.Alice.PushAsync(originalWrites);
        var before = await server.Alice.SnapshotAsync(Scope);

        using var refused = await server.Alice.PostAsync("v1/push", Api.Json(copyWrites));

        await Api.AssertProblemAsync(refused, HttpStatusCode.Conflict, ProtocolErrorCodes.ClientIdReused);
        Assert.Equal(before, await server.Alice.SnapshotAsync(Scope));
        Assert.All((await server.Alice.PushAsync(originalWrites)).Results, r => Assert.Equal(MutationStatus.Duplicate, r.Status));
    }

    [Theory]
    [InlineData("{")]
    [InlineData("not json")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("""{"client":"0000000000000001","clock":"bad","mutations":[]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"000000000001-0000-0000000000000001","mutations":[{"id":1,"scope":"user:alice","collection":"c","doc":"d","op":"explode","hlc":"000000000001-0000-0000000000000001"}]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"000000000001-0000-0000000000000001","mutations":[]} trailing""")]
    public Task Malformed_json_is_refused(string body) =>
        RefusedAsync((server, _) => server.Alice.PostAsync("v1/push", Api.Raw(body)), HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed);

    [Fact]
    public Task A_message_breaking_the_protocol_rules_is_refused() =>
        RefusedAsync(
            (server, device) => server.Alice.PostAsync("v1/push", Api.Json(device.Batch(
                device.Put(Scope, "notes", "a", 0, """{"x":1}"""),
                device.Put(Scope, "notes", "b", 0, """{"x":1}""") with { Id = 1 }))),
            HttpStatusCode.BadRequest,
            ProtocolErrorCodes.InvalidMessage);

    [Fact]
    public Task A_body_larger_than_the_bound_is_refused_by_its_declared_length() =>
        RefusedAsync(
            (server, device) => server.Alice.PostAsync("v1/push", Api.Json(device.Batch(device.Put(Scope, "notes", "big", 0, $$"""{"text":"{{new string('x', 20_000)}}"}""")))),
            HttpStatusCode.RequestEntityTooLarge,
            ProtocolErrorCodes.PayloadTooLarge,
            o => o.MaxRequestBytes = 16 * 1024);

    [Fact]
    public Task A_chunked_body_larger_than_the_bound_is_refused_while_read() =>
        RefusedAsync(
            (server, device) =>
            {
                var bytes = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
                    device.Batch(device.Put(Scope, "notes", "big", 0, $$"""{"text":"{{new string('x', 20_000)}}"}""")), ProtocolJson.PushRequest);
                var content = new StreamContent(new MemoryStream(bytes));
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                var request = new HttpRequestMessage(HttpMethod.Post, "v1/push") { Content = content };
                request.Headers.TransferEncodingChunked = true;
                return server.Alice.SendAsync(request);
            },
            HttpStatusCode.RequestEntityTooLarge,
            ProtocolErrorCodes.PayloadTooLarge,
            o => o.MaxRequestBytes = 16 * 1024);

    [Fact]
    public Task Too_many_mutations_are_refused() =>
        RefusedAsync(
            (server, device) => server.Alice.PostAsync("v1/push", Api.Json(device.Batch([.. Enumerable.Range(0, 11).Select(i => device.Put(Scope, "notes", $"d{i}", 0, """{"x":1}"""))]))),
            HttpStatusCode.RequestEntityTooLarge,
            ProtocolErrorCodes.BatchTooLarge,
            o => o.Limits = new ProtocolLimits { MaxMutationsPerPush = 10 });

    [Fact]
    public Task A_document_too_large_is_refused() =>
        RefusedAsync(
            (server, device) => server.Alice.PostAsync("v1/push", Api.Json(device.Batch(device.Put(Scope, "notes", "big", 0, $$"""{"text":"{{new string('x', 2_000)}}"}""")))),
            HttpStatusCode.RequestEntityTooLarge,
            ProtocolErrorCodes.DocumentTooLarge,
            o => o.Limits = new ProtocolLimits { MaxDocumentBytes = 1_000 });

    [Fact]
    public Task A_value_nested_deeper_than_the_document_bound_is_refused() =>
        RefusedAsync(
            (server, device) => server.Alice.PostAsync("v1/push", Api.Json(device.Batch(device.Put(Scope, "notes", "deep", 0, $$"""{"v":{{Nested(40)}}}""")))),
            HttpStatusCode.BadRequest,
            ProtocolErrorCodes.TooDeep);

    [Fact]
    public Task A_body_nested_deeper_than_the_reader_bound_is_refused_as_too_deep() =>
        RefusedAsync(
            (server, device) =>
            {
                var valid = System.Text.Json.JsonSerializer.Serialize(device.Batch(device.Put(Scope, "notes", "deep", 0, """{"v":0}""")), ProtocolJson.PushRequest);
                return server.Alice.PostAsync("v1/push", Api.Raw(valid.Replace("\"v\":0", "\"v\":" + Nested(200), StringComparison.Ordinal)));
            },
            HttpStatusCode.BadRequest,
            ProtocolErrorCodes.TooDeep);

    [Theory]
    [InlineData("v1/pull")]
    [InlineData("v1/pull?scope=")]
    [InlineData("v1/pull?scope=user:alice&scope=user:alice")]
    [InlineData("v1/pull?scope=user:alice&after=x")]
    [InlineData("v1/pull?scope=user:alice&after=-9223372036854775808")]
    [InlineData("v1/pull?scope=user:alice&after=-1")]
    [InlineData("v1/pull?scope=user:alice&limit=0")]
    [InlineData("v1/pull?scope=user:alice&limit=-3")]
    [InlineData("v1/conflicts")]
    public Task Bad_query_parameters_are_refused(string uri) =>
        RefusedAsync((server, _) => server.Alice.GetAsync(uri), HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);

    [Fact]
    public Task A_malformed_resolve_body_is_refused() =>
        RefusedAsync((server, _) => server.Alice.PostAsync("v1/conflicts/abc/resolve", Api.Raw("{\"choice\":")), HttpStatusCode.BadRequest, ProtocolErrorCodes.Malformed);

    [Fact]
    public Task An_oversized_resolve_body_is_refused() =>
        RefusedAsync(
            (server, _) => server.Alice.PostAsync("v1/conflicts/abc/resolve", Api.Raw($$$"""{"choice":"edited","fields":{"t":"{{{new string('x', 20_000)}}}"}}""")),
            HttpStatusCode.RequestEntityTooLarge,
            ProtocolErrorCodes.PayloadTooLarge,
            o => o.MaxRequestBytes = 16 * 1024);

    [Fact]
    public void The_depth_scan_tells_deep_json_from_broken_json()
    {
        Assert.True(Http.RequestBody.ExceedsDepth(Encoding.UTF8.GetBytes(Nested(65)), 64));
        Assert.False(Http.RequestBody.ExceedsDepth(Encoding.UTF8.GetBytes(Nested(64)), 64));
        Assert.False(Http.RequestBody.ExceedsDepth(Encoding.UTF8.GetBytes("[[[}"), 64));
        Assert.True(Http.RequestBody.ExceedsDepth(Encoding.UTF8.GetBytes(new string('[', 70)), 64));
    }

    private static string Nested(int depth) => new string('[', depth) + new string(']', depth);
}
