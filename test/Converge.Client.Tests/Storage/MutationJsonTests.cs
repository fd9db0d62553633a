using System.Text;
using System.Text.Json;
using Converge.Client.Storage;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Storage;

/// <summary>The outbox's mutation writer must write exactly the protocol serializer's bytes, since a push sends them as they are.</summary>
public sealed class MutationJsonTests
{
    private static readonly string[] Samples = ["\"x\"", "null", "1.5e3", "[1,{\"a\":\"\u00e9<>&'\"}]", "true", "\"\\u0041\\n\"", "-0", "12345678901234567890", "{}"];

    private static readonly string[] Names = ["title", "\u00e9\"x", "a<b", "n"];

    [Fact]
    public void Random_mutations_are_written_as_the_protocol_serializer_writes_them()
    {
        var random = new Random(7);
        var writer = new MutationJson();
        for (var i = 0; i < 2_000; i++)
        {
            var mutation = new Mutation
            {
                Id = random.NextInt64(1, long.MaxValue),
                Scope = Names[random.Next(Names.Length)],
                Collection = "c<" + random.Next(9),
                DocumentId = "d\u00e9" + random.Next(),
                Kind = (MutationKind)random.Next(5),
                Hlc = new HybridTimestamp(random.NextInt64(0, HybridTimestamp.MaxPhysical), random.Next(65_536), (ulong)random.NextInt64()),
                BaseRevision = random.Next(3) == 0 ? 0 : random.NextInt64(),
                Fields = Values(random),
                Remove = random.Next(3) == 0 ? ["a", "\u00e9"] : null,
                BaseValues = Values(random),
                ConflictId = random.Next(3) == 0 ? "cf\"1" : null,
            };

            writer.Write(mutation);

            var expected = JsonSerializer.Serialize(mutation, ProtocolJson.Mutation);
            Assert.Equal(expected, Encoding.UTF8.GetString(writer.Json));
            if (mutation.Fields is not null)
            {
                // The fields' object, as a put of a new document stores it for its value.
                using var document = JsonDocument.Parse(expected);
                Assert.Equal(document.RootElement.GetProperty("fields").GetRawText(), Encoding.UTF8.GetString(writer.Fields));
            }
        }
    }

    private static Dictionary<string, JsonElement>? Values(Random random)
    {
        if (random.Next(3) == 0)
        {
            return null;
        }

        var values = new Dictionary<string, JsonElement>();
        for (var k = random.Next(0, 4); k > 0; k--)
        {
            values[Names[random.Next(Names.Length)] + random.Next(3)] = JsonElement.Parse(Samples[random.Next(Samples.Length)]);
        }

        return values;
    }
}
