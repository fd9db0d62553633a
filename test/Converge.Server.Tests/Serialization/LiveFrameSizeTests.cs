using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Converge.Server.Engine;
using Converge.Server.Live;
using CsCheck;

namespace Converge.Server.Tests.Serialization;

/// <summary>A live message's size is known before it is written, so a commit too large for it is never built whole.</summary>
public sealed class LiveFrameSizeTests
{
    private static readonly HybridTimestamp Hlc = new(1_700_000_000_000, 3, 0x9f0c1e2d3a4b5c6d);

    private static readonly Gen<JsonElement> Values = Gen.OneOf(
        Gen.Int.Select(i => JsonSerializer.SerializeToElement(i)),
        Gen.Double.Where(double.IsFinite).Select(d => JsonSerializer.SerializeToElement(d)),
        Gen.String.Select(s => JsonSerializer.SerializeToElement(s)),
        Gen.String.Select(s => JsonDocument.Parse("\"" + JsonEncodedText.Encode(s, System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping) + "\"").RootElement.Clone()),
        Gen.Const(JsonDocument.Parse("""{"a":"<b>&'+`\u00e9\ud83d\ude00","n":[1,2,{"x":null}]}""").RootElement.Clone()),
        Gen.Bool.Select(b => JsonSerializer.SerializeToElement(b)));

    private static readonly Gen<FieldState> Fields = Gen.Select(Values, Gen.Long[0, long.MaxValue], Gen.Bool,
        (value, revision, removed) => removed ? FieldState.RemovedAt(Hlc, revision, 7) : FieldState.Written(value, Hlc, revision, 7));

    private static readonly Gen<Dictionary<string, FieldState>> FieldSets = Gen.Dictionary(Gen.String[1, 12], Fields)[0, 6];

    private static readonly Gen<DocumentChange> Changes = Gen.Select(Gen.String[1, 20], Gen.String[1, 40], FieldSets, (collection, id, fields) =>
        new DocumentChange { Collection = collection, DocumentId = id, State = new DocumentState { Fields = fields, Revision = 12 } });

    private static readonly Gen<ConflictRecord> Records = Gen.Select(Gen.String[1, 40], FieldSets, Values, (doc, fields, value) => new ConflictRecord
    {
        Id = Guid.NewGuid().ToString(),
        Scope = "team:7",
        Collection = "notes",
        DocumentId = doc,
        Revision = 99,
        Status = ConflictStatus.Open,
        Fields = [.. fields.Select(f => new ConflictField { Name = f.Key, Base = value, Server = f.Value, Client = FieldState.Written(value, Hlc, 3, 9) })],
        ClientId = "0000000000000009",
        MutationId = 5,
        CreatedAt = DateTimeOffset.UnixEpoch,
    });

    [Fact]
    public void The_estimate_of_a_live_message_is_never_below_the_message_it_stands_for_and_within_a_bound_above_it() =>
        Gen.Select(Changes.List[0, 5], Records.List[0, 3]).Sample((changes, records) =>
        {
            var page = new PullPage { Scope = "team:7", Cursor = 40, Clock = Hlc, Epoch = "e1", Documents = changes, Conflicts = records };
            var actual = LiveFrames.Changes(39, page).Length;
            var estimate = page.EstimateBytes();

            Assert.InRange(estimate, actual, (6L * actual) + 4096);
        });
}
