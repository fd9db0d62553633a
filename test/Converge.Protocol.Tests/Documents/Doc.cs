using System.Text.Json;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Protocol.Tests.Documents;

/// <summary>Builders that keep the merge tests short: JSON text in, mutations and states out.</summary>
internal static class Doc
{
    public const ulong A = 0xA;
    public const ulong B = 0xB;
    public const ulong C = 0xC;

    /// <summary>A timestamp of replica <paramref name="node"/> at <paramref name="physical"/> ms.</summary>
    public static HybridTimestamp T(long physical, ulong node) => new(physical, 0, node);

    public static JsonElement V(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    /// <summary>The members of a JSON object as a field dictionary.</summary>
    public static Dictionary<string, JsonElement> Fields(string json)
    {
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in V(json).EnumerateObject())
        {
            fields[property.Name] = property.Value.Clone();
        }

        return fields;
    }

    public static Mutation Mutation(
        MutationKind kind, HybridTimestamp hlc, long @base = 0, string? fields = null, string[]? remove = null, string? baseValues = null, string doc = "d1", long id = 1) => new()
        {
            Id = id,
            Scope = "s",
            Collection = "c",
            DocumentId = doc,
            Kind = kind,
            Hlc = hlc,
            BaseRevision = @base,
            Fields = fields is null ? null : Fields(fields),
            Remove = remove,
            BaseValues = baseValues is null ? null : Fields(baseValues),
        };

    public static Mutation Put(HybridTimestamp hlc, string fields, long @base = 0, string[]? remove = null) => Mutation(MutationKind.Put, hlc, @base, fields, remove);

    public static Mutation Patch(HybridTimestamp hlc, string? fields, long @base = 0, string[]? remove = null, string? baseValues = null) =>
        Mutation(MutationKind.Patch, hlc, @base, fields, remove, baseValues);

    public static Mutation Delete(HybridTimestamp hlc, long @base = 0) => Mutation(MutationKind.Delete, hlc, @base);

    public static Mutation Increment(HybridTimestamp hlc, string fields, long @base = 0, string[]? remove = null) => Mutation(MutationKind.Increment, hlc, @base, fields, remove);

    /// <summary>Applies a mutation under the given rules (default rules when none).</summary>
    public static MergeOutcome Apply(DocumentState? current, Mutation mutation, ulong writer, long revision, CollectionRules? rules = null) =>
        DocumentMerge.Apply(current, mutation, writer, revision, rules ?? CollectionRules.Default);

    /// <summary>Applies and asserts the state changed, returning the new state.</summary>
    public static DocumentState Changed(DocumentState? current, Mutation mutation, ulong writer, long revision, CollectionRules? rules = null)
    {
        var outcome = Apply(current, mutation, writer, revision, rules);
        Assert.True(outcome.Changed, $"Expected a change, got {outcome.Status}: {outcome.Reason}");
        Assert.Equal(revision, outcome.State.Revision);
        return outcome.State;
    }

    /// <summary>Asserts the document as an application sees it, members in any order.</summary>
    public static void AssertJson(string expected, DocumentState state)
    {
        var actual = state.ToJson();
        Assert.NotNull(actual);
        Assert.True(JsonElement.DeepEquals(V(expected), actual.Value), $"Expected {expected}, got {actual.Value.GetRawText()}");
    }

    public static void AssertValue(string expected, JsonElement? actual)
    {
        Assert.NotNull(actual);
        Assert.True(JsonElement.DeepEquals(V(expected), actual.Value), $"Expected {expected}, got {actual.Value.GetRawText()}");
    }

    /// <summary>The state's JSON form for failure messages; tolerant of states the serializer refuses.</summary>
    public static string Describe(DocumentState? state)
    {
        if (state is null)
        {
            return "(none)";
        }

        var fields = string.Join(", ", state.Fields.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f =>
            $"{f.Key}={(f.Value.Removed ? "<removed>" : f.Value.Value.GetRawText())}@{f.Value.Hlc.Physical}.{f.Value.Hlc.Counter}.{f.Value.Hlc.Node:x}/r{f.Value.Revision}/w{f.Value.Writer:x}"));
        return $"{(state.Deleted ? $"DELETED(by {state.DeletedBy:x} r{state.DeletedRevision}) " : "")}rev {state.Revision} {{{fields}}}";
    }

    public static CollectionRules Rules(ConflictPolicy policy, DeleteRule delete = DeleteRule.DeleteWins, ConflictResolver? resolver = null) =>
        new() { Policy = policy, Delete = delete, Resolver = resolver };
}
