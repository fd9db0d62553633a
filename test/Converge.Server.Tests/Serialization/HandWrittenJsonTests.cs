using System.Text;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Http;
using CsCheck;

namespace Converge.Server.Tests.Serialization;

/// <summary>The server's hand-written JSON paths must read and write exactly what the protocol's generated serializer does.</summary>
public sealed class HandWrittenJsonTests
{
    private const string Hlc = "0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d";

    private static readonly Gen<HybridTimestamp> Timestamps =
        Gen.Select(Gen.Long[0, HybridTimestamp.MaxPhysical], Gen.Int[0, ushort.MaxValue], Gen.ULong, (p, c, n) => new HybridTimestamp(p, c, n));

    private static readonly Gen<JsonElement> Values = Gen.OneOf(
        Gen.Int.Select(i => JsonSerializer.SerializeToElement(i)),
        Gen.Double.Where(double.IsFinite).Select(d => JsonSerializer.SerializeToElement(d)),
        Gen.String.Select(s => JsonSerializer.SerializeToElement(s)),
        Gen.Bool.Select(b => JsonSerializer.SerializeToElement(b)),
        Gen.Const(JsonSerializer.SerializeToElement<object?>(null)),
        Gen.Int.Array[0, 4].Select(a => JsonSerializer.SerializeToElement(a)));

    private static readonly Gen<FieldState> Fields = Gen.Select(Gen.Bool, Values, Timestamps, Gen.Long[0, long.MaxValue], Gen.ULong, Gen.Bool,
        (removed, value, hlc, revision, writer, sameWriter) => removed
            ? FieldState.RemovedAt(hlc, revision, sameWriter ? hlc.Node : writer)
            : FieldState.Written(value, hlc, revision, sameWriter ? hlc.Node : writer));

    private static readonly Gen<DocumentState> States = Gen.Select(
        Gen.Dictionary(Gen.String[Gen.Char.AlphaNumeric, 1, 8], Fields)[0, 6],
        Gen.Bool,
        Timestamps,
        Gen.Long[0, 1_000_000],
        Gen.ULong,
        Gen.Long[0, 1_000_000],
        (fields, deleted, hlc, revision, by, other) => new DocumentState
        {
            Fields = fields,
            Deleted = deleted,
            DeletedHlc = revision % 2 == 0 ? hlc : null,
            DeletedRevision = revision / 2,
            DeletedBy = by,
            OtherDeletedRevision = other,
            UpdatedRevision = other / 3,
            UpdatedBy = by / 5,
            OtherUpdatedRevision = other / 7,
            Revision = revision,
        });

    [Fact]
    public void The_state_writer_writes_the_bytes_the_generated_serializer_writes() =>
        States.Sample(state =>
        {
            var expected = JsonSerializer.SerializeToUtf8Bytes(state, ProtocolJson.DocumentState);
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                DocumentStateJson.Write(writer, state);
            }

            Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(buffer.WrittenSpan));
        });

    [Theory]
    [InlineData($$$"""{"client":"0000000000000001","clock":"{{{Hlc}}}","mutations":[{"id":1,"scope":"s","collection":"c","doc":"d","op":"put","hlc":"{{{Hlc}}}","fields":{"a":1,"b":[1,{"x":null}],"c":"é\u0000"}}]}""")]
    [InlineData($$$"""{"mutations":[{"op":"patch","id":2,"doc":"d","collection":"c","scope":"s","hlc":"{{{Hlc}}}","base":7,"fields":{"a":true},"remove":["b"],"baseValues":{"a":false}}],"clock":"{{{Hlc}}}","client":"0000000000000001"}""")]
    [InlineData($$$"""{"client":"0000000000000001","clock":"{{{Hlc}}}","mutations":[{"id":3,"scope":"s","collection":"c","doc":"d","op":"resolve","hlc":"{{{Hlc}}}","conflict":"k","fields":{"a":1}}],"unknown":{"deep":[1]}}""")]
    [InlineData($$$"""{"client":"0000000000000001","clock":"{{{Hlc}}}","mutations":[{"id":4,"scope":"s","collection":"c","doc":"d","op":"delete","hlc":"{{{Hlc}}}","id":5}]}""")]
    [InlineData($$$"""{"client":"0000000000000001","clock":"{{{Hlc}}}","mutations":[]}""")]
    public void The_push_reader_reads_what_the_generated_deserializer_reads(string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var expected = JsonSerializer.Deserialize(bytes, ProtocolJson.PushRequest)!;
        var actual = PushReader.Read(bytes)!;

        Assert.Equal(JsonSerializer.Serialize(expected, ProtocolJson.PushRequest), JsonSerializer.Serialize(actual, ProtocolJson.PushRequest));
    }

    [Theory]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("""{"clock":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d","mutations":[]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"bad","mutations":[]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d","mutations":[{"id":1,"scope":"s","collection":"c","doc":"d","op":"PUT","hlc":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d"}]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d","mutations":[{"id":1,"scope":"s","collection":"c","doc":"d","op":1,"hlc":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d"}]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d","mutations":[{"id":"1","scope":"s","collection":"c","doc":"d","op":"put","hlc":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d"}]}""")]
    [InlineData("""{"client":"0000000000000001","clock":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d","mutations":[{"scope":"s","collection":"c","doc":"d","op":"put","hlc":"0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d"}]}""")]
    public void The_push_reader_refuses_what_the_generated_deserializer_refuses(string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);

        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(bytes, ProtocolJson.PushRequest));
        Assert.ThrowsAny<JsonException>(() => PushReader.Read(bytes));
    }
}
