using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using static Converge.Protocol.Tests.Documents.Doc;

namespace Converge.Protocol.Tests.Messages;

public class ProtocolJsonTests
{
    private static readonly HybridTimestamp Clock = new(0x0191a2b3c4d5, 3, 0x9f0c1e2d3a4b5c6d);
    private static readonly HybridTimestamp Other = new(0x0191a2b3c4e0, 0, 0x1111222233334444);

    // ---- Samples: every member set, so every wire name appears ----

    private static Mutation FullMutation => new()
    {
        Id = 17,
        Scope = "user:alice",
        Collection = "todos",
        DocumentId = "t1",
        Kind = MutationKind.Patch,
        Hlc = Clock,
        BaseRevision = 14,
        Fields = Fields("""{"done":true,"tags":["a","b"],"meta":{"n":1.5}}"""),
        Remove = ["note"],
        BaseValues = Fields("""{"done":false}"""),
        ConflictId = "c-1",
    };

    private static Mutation MinimalMutation => new()
    {
        Id = 18,
        Scope = "user:alice",
        Collection = "todos",
        DocumentId = "t2",
        Kind = MutationKind.Delete,
        Hlc = Other,
    };

    private static PushRequest Push => new() { ClientId = "9f0c1e2d3a4b5c6d", Clock = Clock, Mutations = [FullMutation, MinimalMutation] };

    private static MutationResult FullResult => new() { Id = 17, Status = MutationStatus.Conflict, Revision = 15, ConflictId = "c-1", Reason = "why", Restamped = Other };

    private static PushResponse PushResult => new() { Clock = Clock, Results = [FullResult, new MutationResult { Id = 18, Status = MutationStatus.Duplicate }] };

    private static FieldState LiveField => FieldState.Written(V("\"Buy milk\""), Clock, 12, Clock.Node);

    private static FieldState RestampedField => FieldState.Written(V("[1,{\"x\":null}]"), Other, 13, 0xABCDEF);

    private static FieldState RemovedField => FieldState.RemovedAt(Other, 14, Other.Node);

    private static DocumentState LiveState => new()
    {
        Fields = new Dictionary<string, FieldState> { ["title"] = LiveField, ["list"] = RestampedField, ["empty"] = FieldState.Written(V("null"), Clock, 12, Clock.Node) },
        Revision = 14,
    };

    private static DocumentState DeletedState => new()
    {
        Fields = new Dictionary<string, FieldState> { ["title"] = LiveField },
        Deleted = true,
        DeletedHlc = Other,
        DeletedRevision = 18,
        DeletedBy = 0x1234,
        Revision = 18,
    };

    private static ConflictRecord Conflict => new()
    {
        Id = "0193c1f0-8e1a-7b2c-9d3e-4f5a6b7c8d9e",
        Scope = "team:42",
        Collection = "notes",
        DocumentId = "n7",
        Revision = 31,
        Status = ConflictStatus.Resolved,
        Fields =
        [
            new ConflictField { Name = "title", Base = V("\"Draft\""), Server = LiveField, Client = RestampedField },
            new ConflictField { Name = "body", Server = LiveField, Client = LiveField },
        ],
        ClientId = "9f0c1e2d3a4b5c6d",
        MutationId = 17,
        CreatedAt = new DateTimeOffset(2026, 11, 26, 15, 4, 5, TimeSpan.Zero),
        Resolution = "edited",
    };

    private static PullResponse Pull => new()
    {
        Scope = "user:alice",
        Cursor = 18,
        HasMore = true,
        Reset = true,
        Clock = Clock,
        Changes =
        [
            new DocumentChange { Collection = "todos", DocumentId = "t1", State = LiveState },
            new DocumentChange { Collection = "todos", DocumentId = "t2", State = DeletedState },
        ],
        Conflicts = [Conflict],
    };

    private static ResolveConflictRequest Resolve => new() { Choice = "edited", Fields = Fields("""{"title":"Plan A+B"}""") };

    private static HealthResponse Health => new() { Status = "ok", Clock = Clock };

    private static string RoundTrip<T>(T message, JsonTypeInfo<T> info)
    {
        var json = JsonSerializer.Serialize(message, info);
        var back = JsonSerializer.Deserialize(json, info);
        Assert.NotNull(back);
        var again = JsonSerializer.Serialize(back, info);
        Assert.Equal(json, again);
        return json;
    }

    private static JsonElement Element<T>(T message, JsonTypeInfo<T> info) => V(JsonSerializer.Serialize(message, info));

    private static void AssertNames(JsonElement element, params string[] expected) =>
        Assert.Equal(expected.Order(StringComparer.Ordinal), element.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));

    // ---- Round trips ----

    [Fact]
    public void Every_message_round_trips_to_the_same_json()
    {
        RoundTrip(Push, ProtocolJson.PushRequest);
        RoundTrip(new PushRequest { ClientId = "0000000000000001", Clock = Other, Mutations = [MinimalMutation] }, ProtocolJson.PushRequest);
        RoundTrip(PushResult, ProtocolJson.PushResponse);
        RoundTrip(Pull, ProtocolJson.PullResponse);
        RoundTrip(new PullResponse { Scope = "s", Cursor = 0, Clock = Clock, Changes = [] }, ProtocolJson.PullResponse);
        RoundTrip(Conflict, ProtocolJson.ConflictRecord);
        RoundTrip(Conflict with { Status = ConflictStatus.Open, Resolution = null }, ProtocolJson.ConflictRecord);
        RoundTrip([Conflict, Conflict with { Id = "other" }], ProtocolJson.ConflictRecords);
        RoundTrip(Resolve, ProtocolJson.ResolveConflictRequest);
        RoundTrip(new ResolveConflictRequest { Choice = "server" }, ProtocolJson.ResolveConflictRequest);
        RoundTrip(LiveState, ProtocolJson.DocumentState);
        RoundTrip(DeletedState, ProtocolJson.DocumentState);
        RoundTrip(Health, ProtocolJson.HealthResponse);
    }

    [Fact]
    public void A_round_trip_keeps_the_values()
    {
        var push = JsonSerializer.Deserialize(JsonSerializer.Serialize(Push, ProtocolJson.PushRequest), ProtocolJson.PushRequest)!;
        var m = push.Mutations[0];

        Assert.Equal(Clock, push.Clock);
        Assert.Equal((17, "user:alice", "todos", "t1", MutationKind.Patch, Clock, 14L, "c-1"), (m.Id, m.Scope, m.Collection, m.DocumentId, m.Kind, m.Hlc, m.BaseRevision, m.ConflictId));
        Assert.Equal(["note"], m.Remove!);
        AssertValue("""{"n":1.5}""", m.Fields!["meta"]);
        AssertValue("false", m.BaseValues!["done"]);

        var state = JsonSerializer.Deserialize(JsonSerializer.Serialize(DeletedState, ProtocolJson.DocumentState), ProtocolJson.DocumentState)!;
        Assert.True(state.SameContentAs(DeletedState));
        Assert.Equal((Other, 18L, 0x1234UL, 18L), (state.DeletedHlc, state.DeletedRevision, state.DeletedBy, state.Revision));
        var restamped = JsonSerializer.Deserialize(JsonSerializer.Serialize(LiveState, ProtocolJson.DocumentState), ProtocolJson.DocumentState)!.Fields["list"];
        Assert.Equal(0xABCDEFUL, restamped.Writer);
        Assert.Equal(JsonValueKind.Null, JsonSerializer.Deserialize(JsonSerializer.Serialize(LiveState, ProtocolJson.DocumentState), ProtocolJson.DocumentState)!.Fields["empty"].Value.ValueKind);
        Assert.Equal(13, restamped.Revision);
    }

    /// <summary>A removed field has no value: <c>{"h": …, "d": true, "r": …}</c>, as docs/protocol.md shows.</summary>
    [Fact]
    public void A_document_with_a_removed_field_round_trips_without_a_value()
    {
        var state = LiveState with { Fields = new Dictionary<string, FieldState>(LiveState.Fields) { ["note"] = RemovedField } };

        var json = RoundTrip(state, ProtocolJson.DocumentState);

        var note = V(json).GetProperty("f").GetProperty("note");
        AssertNames(note, "h", "d", "r");
        Assert.True(note.GetProperty("d").GetBoolean());
        var back = JsonSerializer.Deserialize(json, ProtocolJson.DocumentState)!;
        Assert.True(back.Fields["note"].Removed);
        Assert.True(back.SameContentAs(state));
    }

    [Fact]
    public void A_pull_page_with_a_removed_field_serializes()
    {
        var state = LiveState with { Fields = new Dictionary<string, FieldState>(LiveState.Fields) { ["note"] = RemovedField } };

        RoundTrip(Pull with { Changes = [new DocumentChange { Collection = "todos", DocumentId = "t1", State = state }] }, ProtocolJson.PullResponse);
    }

    // ---- Wire names ----

    [Fact]
    public void Push_messages_use_the_documented_names()
    {
        var push = Element(Push, ProtocolJson.PushRequest);
        AssertNames(push, "client", "clock", "mutations");
        AssertNames(push.GetProperty("mutations")[0], "id", "scope", "collection", "doc", "op", "hlc", "base", "fields", "remove", "baseValues", "conflict");
        AssertNames(push.GetProperty("mutations")[1], "id", "scope", "collection", "doc", "op", "hlc", "base");

        var response = Element(PushResult, ProtocolJson.PushResponse);
        AssertNames(response, "clock", "results");
        AssertNames(response.GetProperty("results")[0], "id", "status", "rev", "conflict", "reason", "restamped");
        AssertNames(response.GetProperty("results")[1], "id", "status");
    }

    [Fact]
    public void Pull_messages_and_document_states_use_the_documented_names()
    {
        var pull = Element(Pull, ProtocolJson.PullResponse);
        AssertNames(pull, "scope", "cursor", "hasMore", "reset", "clock", "changes", "conflicts");
        AssertNames(Element(Pull with { Reset = false, Conflicts = null }, ProtocolJson.PullResponse), "scope", "cursor", "hasMore", "clock", "changes");

        var live = pull.GetProperty("changes")[0];
        AssertNames(live, "collection", "id", "state");
        AssertNames(live.GetProperty("state"), "f", "rev");
        AssertNames(live.GetProperty("state").GetProperty("f").GetProperty("title"), "v", "h", "r");
        AssertNames(live.GetProperty("state").GetProperty("f").GetProperty("list"), "v", "h", "r", "w");
        Assert.Equal(0xABCDEFUL, live.GetProperty("state").GetProperty("f").GetProperty("list").GetProperty("w").GetUInt64());

        var deleted = pull.GetProperty("changes")[1].GetProperty("state");
        AssertNames(deleted, "f", "del", "dh", "dr", "dw", "rev");
        Assert.True(deleted.GetProperty("del").GetBoolean());
    }

    [Fact]
    public void Conflict_messages_use_the_documented_names()
    {
        var record = Element(Conflict, ProtocolJson.ConflictRecord);
        AssertNames(record, "id", "scope", "collection", "doc", "rev", "status", "fields", "client", "mutation", "createdAt", "resolution");
        AssertNames(record.GetProperty("fields")[0], "name", "base", "server", "client");
        AssertNames(record.GetProperty("fields")[1], "name", "server", "client");
        AssertNames(Element(Conflict with { Resolution = null }, ProtocolJson.ConflictRecord), "id", "scope", "collection", "doc", "rev", "status", "fields", "client", "mutation", "createdAt");

        AssertNames(Element(Resolve, ProtocolJson.ResolveConflictRequest), "choice", "fields");
        AssertNames(Element(new ResolveConflictRequest { Choice = "client" }, ProtocolJson.ResolveConflictRequest), "choice");
        AssertNames(Element(Health, ProtocolJson.HealthResponse), "status", "protocol", "clock");
        Assert.Equal(ProtocolLimits.Version, Element(Health, ProtocolJson.HealthResponse).GetProperty("protocol").GetInt32());
    }

    // ---- Enums and timestamps ----

    [Theory]
    [InlineData(MutationKind.Put, "put")]
    [InlineData(MutationKind.Patch, "patch")]
    [InlineData(MutationKind.Delete, "delete")]
    [InlineData(MutationKind.Increment, "increment")]
    [InlineData(MutationKind.Resolve, "resolve")]
    public void Operations_are_lowercase_strings(MutationKind kind, string expected)
    {
        var json = Element(Push with { Mutations = [MinimalMutation with { Kind = kind }] }, ProtocolJson.PushRequest);

        Assert.Equal(expected, json.GetProperty("mutations")[0].GetProperty("op").GetString());
        var back = JsonSerializer.Deserialize(json.GetRawText(), ProtocolJson.PushRequest)!;
        Assert.Equal(kind, back.Mutations[0].Kind);
    }

    [Theory]
    [InlineData(MutationStatus.Applied, "applied")]
    [InlineData(MutationStatus.Merged, "merged")]
    [InlineData(MutationStatus.Conflict, "conflict")]
    [InlineData(MutationStatus.Rejected, "rejected")]
    [InlineData(MutationStatus.Duplicate, "duplicate")]
    public void Statuses_are_lowercase_strings(MutationStatus status, string expected)
    {
        var json = Element(PushResult with { Results = [FullResult with { Status = status }] }, ProtocolJson.PushResponse);

        Assert.Equal(expected, json.GetProperty("results")[0].GetProperty("status").GetString());
    }

    [Theory]
    [InlineData(ConflictStatus.Open, "open")]
    [InlineData(ConflictStatus.Resolved, "resolved")]
    public void Conflict_statuses_are_lowercase_strings(ConflictStatus status, string expected) =>
        Assert.Equal(expected, Element(Conflict with { Status = status }, ProtocolJson.ConflictRecord).GetProperty("status").GetString());

    [Fact]
    public void An_unknown_operation_name_is_a_json_error()
    {
        var json = Element(Push, ProtocolJson.PushRequest).GetRawText().Replace("\"op\":\"patch\"", "\"op\":\"upsert\"", StringComparison.Ordinal);

        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(json, ProtocolJson.PushRequest));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("\"PATCH\"")]
    public void An_operation_given_as_a_number_or_in_capitals_is_a_json_error(string op)
    {
        var json = Element(Push, ProtocolJson.PushRequest).GetRawText().Replace("\"op\":\"patch\"", "\"op\":" + op, StringComparison.Ordinal);

        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(json, ProtocolJson.PushRequest));
    }

    [Fact]
    public void Timestamps_are_their_text_form()
    {
        var push = Element(Push, ProtocolJson.PushRequest);

        Assert.Equal("0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d", push.GetProperty("clock").GetString());
        Assert.Equal(Clock.ToString(), push.GetProperty("mutations")[0].GetProperty("hlc").GetString());
        Assert.Equal(Other.ToString(), Element(PushResult, ProtocolJson.PushResponse).GetProperty("results")[0].GetProperty("restamped").GetString());
        Assert.Equal(Clock.ToString(), Element(LiveState, ProtocolJson.DocumentState).GetProperty("f").GetProperty("title").GetProperty("h").GetString());
    }

    [Theory]
    [InlineData("\"0191A2B3C4D5-0003-9F0C1E2D3A4B5C6D\"")]
    [InlineData("\"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6\"")]
    [InlineData("\"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d0\"")]
    [InlineData("\"0191a2b3c4d5_0003-9f0c1e2d3a4b5c6d\"")]
    [InlineData("\"0191a2b3c4d5-000g-9f0c1e2d3a4b5c6d\"")]
    [InlineData("\"\\u0030191a2b3c4d5-0003-9f0c1e2d3a4b5c6d\"")]
    [InlineData("\"\"")]
    [InlineData("1726000000000")]
    [InlineData("null")]
    [InlineData("{}")]
    public void An_invalid_timestamp_is_a_json_error(string clock)
    {
        var json = $$"""{"client":"9f0c1e2d3a4b5c6d","clock":{{clock}},"mutations":[]}""";
        var health = $$"""{"status":"ok","protocol":1,"clock":{{clock}}}""";
        var restamped = $$"""{"clock":"{{Clock}}","results":[{"id":1,"status":"applied","restamped":{{clock}}}]}""";

        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(json, ProtocolJson.PushRequest));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(health, ProtocolJson.HealthResponse));
        if (clock != "null")
        {
            Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(restamped, ProtocolJson.PushResponse));
        }
    }

    [Fact]
    public void A_missing_required_member_is_a_json_error()
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize("""{"client":"9f0c1e2d3a4b5c6d","mutations":[]}""", ProtocolJson.PushRequest));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(
            $$"""{"client":"9f0c1e2d3a4b5c6d","clock":"{{Clock}}","mutations":[{"id":1,"scope":"s","collection":"c","doc":"d","op":"put"}]}""", ProtocolJson.PushRequest));
    }

    // ---- Depth ----

    /// <summary>A push whose one field value nests <paramref name="valueDepth"/> arrays: 4 levels of envelope plus the value.</summary>
    private static string DeepPush(int valueDepth) =>
        $$$"""{"client":"9f0c1e2d3a4b5c6d","clock":"{{{Clock}}}","mutations":[{"id":1,"scope":"s","collection":"c","doc":"d","op":"put","hlc":"{{{Clock}}}","fields":{"a":{{{new string('[', valueDepth)}}}{{{new string(']', valueDepth)}}}}}]}""";

    [Fact]
    public void A_message_as_deep_as_the_bound_deserializes()
    {
        Assert.Equal(64, ProtocolLimits.MaxMessageDepth);
        Assert.Equal(ProtocolLimits.MaxMessageDepth, ProtocolJson.Options.MaxDepth);

        var push = JsonSerializer.Deserialize(DeepPush(ProtocolLimits.MaxMessageDepth - 4), ProtocolJson.PushRequest)!;

        Assert.Equal(JsonValueKind.Array, push.Mutations[0].Fields!["a"].ValueKind);
    }

    [Fact]
    public void A_message_deeper_than_the_bound_fails_to_deserialize()
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(DeepPush(ProtocolLimits.MaxMessageDepth - 3), ProtocolJson.PushRequest));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(DeepPush(500), ProtocolJson.PushRequest));

        var deepValue = new string('[', ProtocolLimits.MaxMessageDepth) + new string(']', ProtocolLimits.MaxMessageDepth);
        var resolve = $$$"""{"choice":"edited","fields":{"a":{{{deepValue}}}}}""";
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(resolve, ProtocolJson.ResolveConflictRequest));
        var pull = $$$"""{"scope":"s","cursor":1,"hasMore":false,"clock":"{{{Clock}}}","changes":[{"collection":"c","id":"d","state":{"f":{"a":{"v":{{{deepValue}}},"h":"{{{Clock}}}"}},"rev":1}}]}""";
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(pull, ProtocolJson.PullResponse));
    }
}
