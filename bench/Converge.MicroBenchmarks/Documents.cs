using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Documents;

namespace Converge.MicroBenchmarks;

/// <summary>The document the sync benchmarks write (a title, a done flag, a priority and two tags), as the server keeps it.</summary>
internal static class Documents
{
    /// <summary>The replica that wrote the stored document.</summary>
    public const ulong WriterA = 0xa1;

    /// <summary>Another replica, whose patch arrives next.</summary>
    public const ulong WriterB = 0xb2;

    /// <summary>The stored document's revision.</summary>
    public const long Revision = 41;

    /// <summary>A recent physical time, so the timestamps look like today's.</summary>
    public const long Physical = 1_760_000_000_000;

    /// <summary>Gets the state of a document written once by <see cref="WriterA"/>, at <see cref="Revision"/>.</summary>
    public static DocumentState Stored()
    {
        var hlc = new HybridTimestamp(Physical, 0, WriterA);
        var fields = new Dictionary<string, FieldState>(StringComparer.Ordinal);
        foreach (var (name, value) in Values("""{"title":"Buy milk and bread for the weekend","done":false,"priority":3,"tags":["home","errands"]}"""))
        {
            fields[name] = FieldState.Written(value, hlc, Revision, WriterA);
        }

        return new DocumentState { Fields = fields, Revision = Revision };
    }

    /// <summary>Parses a JSON object into its top-level fields.</summary>
    public static Dictionary<string, JsonElement> Values(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
    }
}
