using System.Text;
using System.Text.Json;
using Converge.Client.Storage;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Storage;

/// <summary>The one-pass reading of pulled states must give exactly what building the state and its view gives.</summary>
public sealed class StateJsonTests
{
    public static TheoryData<string> Values => new()
    {
        "\"plain\"",
        "\"caf\\u00e9 <b> & 'q' \\\"quoted\\\" \\n\"",
        "\"\\u00e9t\\u00e9\"",
        "1.50",
        "-0",
        "12345678901234567890",
        "1e300",
        "null",
        "true",
        "[1,\"two\",{\"three\":[3,null,false]},[]]",
        "{\"nested\":{\"k\\u00e9y\":\"v\",\"b\":[{}]}}",
    };

    [Theory]
    [MemberData(nameof(Values))]
    public void The_local_value_is_the_text_a_built_view_writes(string value)
    {
        var state = new DocumentState
        {
            Fields = new Dictionary<string, FieldState>
            {
                ["title"] = FieldState.Written(Server.Json(value), Server.Stamp, 4, Server.OtherReplica),
                ["gone"] = FieldState.RemovedAt(Server.Stamp, 5, 7),
                ["n\u00e9<x>"] = FieldState.Written(Server.Json(value), new HybridTimestamp(1_700_000_000_001, 2, 9), 6, 3),
            },
            Revision = 6,
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(state, ProtocolJson.DocumentState);

        var read = StateJson.Read(json);

        Assert.Equal(6, read.Revision);
        Assert.Equal(LocalView.Rebuild(state, []).Value!.ToJson(), read.LocalValue);
    }

    [Fact]
    public void A_deleted_state_has_no_local_value_and_unknown_members_are_ignored()
    {
        var json = """{"f":{"a":{"v":1,"h":"018bcfe56800-0003-0000000000000abc","future":{"x":[1]}}},"del":true,"dh":"018bcfe56800-0003-0000000000000abc","dr":3,"dw":9,"later":[1,2],"rev":10}""";

        var read = StateJson.Read(Encoding.UTF8.GetBytes(json));

        Assert.Equal(new StateSummary(10, null), read);
    }

    [Fact]
    public void A_repeated_field_keeps_its_first_place_and_its_last_state()
    {
        var json = """{"f":{"a":{"v":1,"h":"018bcfe56800-0003-0000000000000abc"},"b":{"v":2,"h":"018bcfe56800-0003-0000000000000abc"},"a":{"v":3,"h":"018bcfe56800-0003-0000000000000abc"}},"rev":1}""";
        var typed = JsonSerializer.Deserialize(json, ProtocolJson.DocumentState)!;

        var read = StateJson.Read(Encoding.UTF8.GetBytes(json));

        Assert.Equal("""{"a":3,"b":2}""", read.LocalValue);
        Assert.Equal(LocalView.Rebuild(typed, []).Value!.ToJson(), read.LocalValue);
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("""{"f":[],"rev":1}""")]
    [InlineData("""{"f":null,"rev":1}""")]
    [InlineData("""{"f":{"a":{"v":1}},"rev":1}""")]
    [InlineData("""{"f":{"a":{"v":1,"h":"not a timestamp"}},"rev":1}""")]
    [InlineData("""{"f":{"a":{"h":"018bcfe56800-0003-0000000000000abc"}},"rev":1}""")]
    [InlineData("""{"f":{"a":{"v":1,"h":"018bcfe56800-0003-0000000000000abc","d":"yes"}},"rev":1}""")]
    [InlineData("""{"f":{},"rev":"1"}""")]
    [InlineData("""{"f":{},"rev":1.5}""")]
    [InlineData("""{"f":{},"del":1,"rev":1}""")]
    [InlineData("""{"f":{},"dw":-1,"rev":1}""")]
    [InlineData("""{"f":{},"rev":1""")]
    public void A_state_the_typed_reader_refuses_is_refused(string json)
    {
        Assert.ThrowsAny<JsonException>(() => StateJson.Read(Encoding.UTF8.GetBytes(json)));
    }

    [Fact]
    public void Timestamps_are_kept_compact_when_one_write_made_every_field_and_read_back_the_same()
    {
        var hlc = new HybridTimestamp(1_700_000_000_000, 1, 0xc1);
        var put = new Mutation
        {
            Id = 1,
            Scope = "s",
            Collection = "c",
            DocumentId = "d",
            Kind = MutationKind.Put,
            Hlc = hlc,
            Fields = new Dictionary<string, JsonElement> { ["a"] = Server.Json("1"), ["b"] = Server.Json("2") },
        };
        var view = LocalView.Rebuild(null, [put]);

        var stored = view.TimestampsJson();
        var back = LocalView.FromStored(new DocumentRow(null, 0, view.Value!.ToJson(), stored, 1));

        Assert.Equal("\"" + hlc + "\"", stored);
        Assert.Equal(view.Timestamps, back.Timestamps);

        // A removed field has a timestamp but no value: the whole map is kept.
        var patch = put with { Id = 2, Kind = MutationKind.Patch, Hlc = new HybridTimestamp(1_700_000_000_002, 0, 0xc1), Fields = null, Remove = ["b"] };
        view.Apply(patch);
        var full = LocalView.FromStored(new DocumentRow(null, 0, view.Value!.ToJson(), view.TimestampsJson(), 2));
        Assert.StartsWith("{", view.TimestampsJson(), StringComparison.Ordinal);
        Assert.Equal(view.Timestamps, full.Timestamps);
    }

    [Fact]
    public void A_row_without_local_timestamps_has_its_server_states()
    {
        var state = Server.State("""{"a":1,"b":2}""", 3);
        var row = new DocumentRow(JsonSerializer.Serialize(state, ProtocolJson.DocumentState), 3, """{"a":1,"b":2}""", null, 0);

        var view = LocalView.FromStored(row);

        Assert.Equal(state.Fields.ToDictionary(f => f.Key, f => f.Value.Hlc), view.Timestamps);
    }
}
