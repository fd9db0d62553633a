using Converge.Protocol.Documents;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using Converge.Protocol.Messages;
using static Converge.Protocol.Tests.Documents.Doc;

namespace Converge.Protocol.Tests.Messages;

public class ProtocolLimitsTests
{
    private static readonly ProtocolLimits Limits = new();
    private static readonly HybridTimestamp Hlc = new(1_000, 0, 1);

    private static Mutation Valid(long id = 1) => new()
    {
        Id = id,
        Scope = "user:alice",
        Collection = "todos",
        DocumentId = "t1",
        Kind = MutationKind.Patch,
        Hlc = Hlc,
        BaseRevision = 3,
        Fields = Fields("""{"a":1}"""),
    };

    private static PushRequest Push(params Mutation[] mutations) => new() { ClientId = "9f0c1e2d3a4b5c6d", Clock = Hlc, Mutations = mutations };

    private static void AssertError(string code, [NotNull] ProtocolError? error)
    {
        Assert.NotNull(error);
        Assert.Equal(code, error.Code);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    /// <summary>Checks a mutation alone and inside a push, which names the mutation in its message.</summary>
    private static void AssertRefused(string code, Mutation mutation, ProtocolLimits? limits = null)
    {
        limits ??= Limits;
        AssertError(code, limits.Check(mutation));
        var inPush = limits.Check(Push(mutation));
        AssertError(code, inPush);
        Assert.StartsWith($"Mutation {mutation.Id}: ", inPush.Message, StringComparison.Ordinal);
    }

    private static void AssertAccepted(Mutation mutation, ProtocolLimits? limits = null)
    {
        limits ??= Limits;
        Assert.Null(limits.Check(mutation));
        Assert.Null(limits.Check(Push(mutation)));
    }

    private static Dictionary<string, JsonElement> ManyFields(int count) =>
        Enumerable.Range(0, count).ToDictionary(i => $"f{i}", _ => V("1"), StringComparer.Ordinal);

    private static string Nested(int depth) => new string('[', depth) + new string(']', depth);

    [Fact]
    public void The_defaults_are_the_documented_ones_and_valid()
    {
        Limits.Validate();
        Assert.Equal(1, ProtocolLimits.Version);
        Assert.Equal(64, ProtocolLimits.MaxMessageDepth);
        Assert.Equal(1_000, Limits.MaxMutationsPerPush);
        Assert.Equal(256 * 1024, Limits.MaxDocumentBytes);
        Assert.Equal(32, Limits.MaxValueDepth);
        Assert.Equal(256, Limits.MaxIdLength);
        Assert.Equal(128, Limits.MaxNameLength);
        Assert.Equal(512, Limits.MaxFieldsPerMutation);
    }

    [Fact]
    public void Limits_that_make_no_sense_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxMutationsPerPush = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxDocumentBytes = 63 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxValueDepth = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxValueDepth = ProtocolLimits.MaxMessageDepth - 7 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxIdLength = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxNameLength = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolLimits { MaxFieldsPerMutation = 0 }.Validate());
        new ProtocolLimits { MaxValueDepth = ProtocolLimits.MaxMessageDepth - 8, MaxDocumentBytes = 64 }.Validate();
    }

    [Fact]
    public void A_valid_push_passes()
    {
        Assert.Null(Limits.Check(Push(
            Valid(1),
            Valid(2) with { Kind = MutationKind.Put, Fields = Fields("""{"a":{"b":[1,2,null]},"c":"é"}"""), Remove = ["d"], BaseValues = Fields("""{"a":0}""") },
            Valid(5) with { Kind = MutationKind.Delete, Fields = null },
            Valid(6) with { Kind = MutationKind.Increment, Fields = Fields("""{"n":-1.5}""") },
            Valid(7) with { Kind = MutationKind.Resolve, ConflictId = "0193c1f0-8e1a-7b2c-9d3e-4f5a6b7c8d9e" })));
    }

    // ---- The push ----

    [Theory]
    [InlineData("")]
    [InlineData("9f0c1e2d3a4b5c6")]
    [InlineData("9f0c1e2d3a4b5c6d0")]
    [InlineData("9F0C1E2D3A4B5C6D")]
    [InlineData("9f0c1e2d3a4b5c6g")]
    [InlineData(" 9f0c1e2d3a4b5c6")]
    public void A_client_id_that_is_not_16_lowercase_hex_digits_is_invalid(string client) =>
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push(Valid()) with { ClientId = client }));

    [Fact]
    public void A_null_client_id_is_invalid() =>
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push(Valid()) with { ClientId = null! }));

    [Fact]
    public void An_empty_push_is_invalid()
    {
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push()));
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push() with { Mutations = null! }));
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push(Valid(), null!)));
    }

    [Fact]
    public void A_push_may_carry_up_to_the_batch_limit()
    {
        var limits = new ProtocolLimits { MaxMutationsPerPush = 3 };

        Assert.Null(limits.Check(Push(Valid(1), Valid(2), Valid(3))));
        AssertError(ProtocolErrorCodes.BatchTooLarge, limits.Check(Push(Valid(1), Valid(2), Valid(3), Valid(4))));
        Assert.Null(Limits.Check(Push([.. Enumerable.Range(1, 1_000).Select(i => Valid(i))])));
        AssertError(ProtocolErrorCodes.BatchTooLarge, Limits.Check(Push([.. Enumerable.Range(1, 1_001).Select(i => Valid(i))])));
    }

    [Theory]
    [InlineData(0L, 1L)]
    [InlineData(-1L, 1L)]
    [InlineData(2L, 2L)]
    [InlineData(3L, 2L)]
    public void Mutation_ids_must_be_positive_and_increasing(long first, long second) =>
        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.Check(Push(Valid(first), Valid(second))));

    [Fact]
    public void Mutation_ids_may_have_gaps() => Assert.Null(Limits.Check(Push(Valid(4), Valid(9))));

    // ---- Names and ids ----

    public static TheoryData<string?> BadNames => [null, "", new string('n', 129), "a\nb", "tab\there", "nul\0", "del\u007f", "c1\u0085"];

    [Theory]
    [MemberData(nameof(BadNames))]
    public void A_scope_collection_or_field_name_must_be_1_to_128_characters_without_control_characters(string? name)
    {
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Scope = name! });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Collection = name! });
        if (name is not null)
        {
            AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = new Dictionary<string, JsonElement> { [name] = V("1") } });
            AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = null, Remove = [name] });
        }

        AssertError(ProtocolErrorCodes.InvalidMessage, Limits.CheckName(name, "scope"));
    }

    [Fact]
    public void Names_of_128_characters_and_any_printable_text_pass()
    {
        var longest = new string('n', 128);

        AssertAccepted(Valid() with { Scope = longest, Collection = longest, Fields = new Dictionary<string, JsonElement> { [longest] = V("1") }, Remove = ["ünïcödé 名前 🙂"] });
        AssertAccepted(Valid() with { Scope = "team:42/u", Collection = "a b ü" });
    }

    [Theory]
    [InlineData("user:alice")]
    [InlineData("team:42")]
    [InlineData("org:acme/sales")]
    [InlineData("user:alice.smith@example.com")]
    [InlineData("user:auth0|5f7c8ec7c33c6c004bbafe82")]
    [InlineData("tenant-1_a~b+c=d")]
    [InlineData("s1")]
    public void A_scope_of_ascii_letters_digits_and_the_safe_signs_passes(string scope)
    {
        Assert.Null(Limits.CheckScope(scope));
        AssertAccepted(Valid() with { Scope = scope });
    }

    [Theory]
    [InlineData("team:\u202E42")]
    [InlineData("team:4\u200B2")]
    [InlineData("team:42\u2028")]
    [InlineData("\uFEFFteam:42")]
    [InlineData("team:\u0430lice")]
    [InlineData("team:42/ü")]
    [InlineData("team 42")]
    [InlineData("team:*")]
    [InlineData("team:%41")]
    [InlineData("team:<42>")]
    [InlineData("team:\\42")]
    public void A_scope_with_any_other_character_is_refused_naming_the_allowed_ones(string scope)
    {
        var error = Limits.CheckScope(scope);

        AssertError(ProtocolErrorCodes.InvalidMessage, error);
        Assert.Contains("ASCII letters, digits and - _ . ~ : @ / + = |", error.Message, StringComparison.Ordinal);
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Scope = scope });
    }

    /// <summary>UTF-16 code units in hex (a lone surrogate would not survive as a test case's string).</summary>
    public static TheoryData<string> HiddenCharacters =>
        ["202E", "202A", "2066", "200B", "200D", "2028", "2029", "FEFF", "061C", "00AD", "D800", "DC00", "DB40 DC41", "0085"];

    [Theory]
    [MemberData(nameof(HiddenCharacters))]
    public void Names_ids_and_conflict_ids_with_invisible_bidi_or_separator_characters_or_lone_surrogates_are_refused(string units)
    {
        var hidden = string.Concat(units.Split(' ').Select(u => (char)Convert.ToUInt16(u, 16)));
        var text = "ab" + hidden + "c";

        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Collection = text });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { DocumentId = text });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = new Dictionary<string, JsonElement> { [text] = V("1") } });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = null, Remove = [text] });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Kind = MutationKind.Resolve, ConflictId = text });
        Assert.Contains("invisible", Limits.CheckName(text, "field name")!.Message, StringComparison.Ordinal);
        Assert.Contains("invisible", Limits.CheckId(text)!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_and_ids_keep_every_script_spaces_and_emoji()
    {
        foreach (var text in new[] { "Notizen é", "日本語 🎉", "имя", "שלום", "مرحبا", "a\u00A0b", "👩\uD83C\uDFFD", "x\u0301" })
        {
            Assert.Null(Limits.CheckName(text, "field name"));
            Assert.Null(Limits.CheckId(text));
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("line\nbreak")]
    [InlineData("nul\0")]
    public void A_document_id_must_be_non_empty_without_control_characters(string id) =>
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { DocumentId = id });

    [Fact]
    public void A_document_id_may_have_256_characters_and_no_more()
    {
        AssertAccepted(Valid() with { DocumentId = new string('d', 256) });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { DocumentId = new string('d', 257) });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { DocumentId = null! });
    }

    // ---- Operations ----

    [Fact]
    public void An_unknown_operation_is_invalid() =>
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Kind = (MutationKind)99 });

    [Fact]
    public void A_negative_base_revision_is_invalid()
    {
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { BaseRevision = -1 });
        AssertAccepted(Valid() with { BaseRevision = 0 });
    }

    [Fact]
    public void A_delete_carries_no_fields()
    {
        var delete = Valid() with { Kind = MutationKind.Delete, Fields = null };

        AssertAccepted(delete);
        AssertAccepted(delete with { Fields = new Dictionary<string, JsonElement>(), Remove = [] });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, delete with { Fields = Fields("""{"a":1}""") });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, delete with { Remove = ["a"] });
    }

    [Fact]
    public void An_increment_carries_at_least_one_field_and_removes_none()
    {
        var increment = Valid() with { Kind = MutationKind.Increment };

        AssertAccepted(increment);
        AssertRefused(ProtocolErrorCodes.InvalidMessage, increment with { Fields = null });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, increment with { Fields = new Dictionary<string, JsonElement>() });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, increment with { Remove = ["b"] });
    }

    [Fact]
    public void A_patch_writes_or_removes_at_least_one_field()
    {
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = null });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = new Dictionary<string, JsonElement>(), Remove = [] });
        AssertAccepted(Valid() with { Fields = null, Remove = ["a"] });
    }

    [Fact]
    public void A_put_may_set_an_empty_document() =>
        AssertAccepted(Valid() with { Kind = MutationKind.Put, Fields = null });

    [Fact]
    public void A_resolve_names_its_conflict()
    {
        var resolve = Valid() with { Kind = MutationKind.Resolve };

        AssertRefused(ProtocolErrorCodes.InvalidMessage, resolve);
        AssertRefused(ProtocolErrorCodes.InvalidMessage, resolve with { ConflictId = "" });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, resolve with { ConflictId = new string('c', 257) });
        AssertAccepted(resolve with { ConflictId = new string('c', 256) });
    }

    [Theory]
    [InlineData(MutationKind.Put)]
    [InlineData(MutationKind.Patch)]
    [InlineData(MutationKind.Delete)]
    [InlineData(MutationKind.Increment)]
    public void Only_a_resolve_names_a_conflict(MutationKind kind) =>
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Kind = kind, Fields = kind == MutationKind.Delete ? null : Fields("""{"a":1}"""), ConflictId = "c1" });

    // ---- Fields and values ----

    [Fact]
    public void A_mutation_may_write_up_to_512_fields_written_and_removed_together()
    {
        AssertAccepted(Valid() with { Fields = ManyFields(512) });
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = ManyFields(513) });
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = ManyFields(256), Remove = [.. Enumerable.Range(0, 257).Select(i => $"r{i}")] });
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = ManyFields(2), Remove = [.. Enumerable.Range(0, 2).Select(i => $"r{i}")] }, new ProtocolLimits { MaxFieldsPerMutation = 3 });
    }

    [Fact]
    public void Base_values_are_bounded_like_values_and_only_for_fields_the_mutation_touches()
    {
        var written = Valid().Fields!.Keys.First();
        AssertAccepted(Valid() with { BaseValues = Fields($$"""{"{{written}}":"before"}""") });
        AssertRefused(ProtocolErrorCodes.TooDeep, Valid() with { BaseValues = Fields($$"""{"{{written}}":{{Nested(33)}}}""") });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { BaseValues = Fields("""{"untouched":1}""") });
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { BaseValues = new Dictionary<string, JsonElement> { [written] = default } });
        var big = new string('x', 300);
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { BaseValues = Fields($$"""{"{{written}}":"{{big}}"}""") }, new ProtocolLimits { MaxDocumentBytes = 256 });
    }

    [Fact]
    public void A_whole_document_is_bounded_in_fields_and_bytes()
    {
        static DocumentState StateOf(params (string Name, string Json)[] fields) => new()
        {
            Fields = fields.ToDictionary(f => f.Name, f => FieldState.Written(JsonDocument.Parse(f.Json).RootElement.Clone(), Hlc, 1, 1)),
        };

        var three = StateOf(("a", "1"), ("b", "2"), ("c", "3"));
        Assert.Null(new ProtocolLimits().CheckState(three));
        Assert.Equal(ProtocolErrorCodes.DocumentTooLarge, new ProtocolLimits { MaxFieldsPerDocument = 2 }.CheckState(three)?.Code);
        var big = StateOf(("a", $"\"{new string('x', 100)}\""), ("b", $"\"{new string('y', 100)}\""));
        Assert.Null(new ProtocolLimits { MaxDocumentStateBytes = 300 }.CheckState(big));
        Assert.Equal(ProtocolErrorCodes.DocumentTooLarge, new ProtocolLimits { MaxDocumentStateBytes = 150 }.CheckState(big)?.Code);
    }

    [Fact]
    public void A_field_without_a_value_is_invalid() =>
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = default } });

    [Fact]
    public void A_value_may_nest_32_levels_and_no_deeper()
    {
        AssertAccepted(Valid() with { Fields = Fields($$"""{"a":{{Nested(32)}}}""") });
        AssertRefused(ProtocolErrorCodes.TooDeep, Valid() with { Fields = Fields($$"""{"a":{{Nested(33)}}}""") });

        var objects = string.Concat(Enumerable.Repeat("{\"k\":", 33)) + "1" + new string('}', 33);
        AssertRefused(ProtocolErrorCodes.TooDeep, Valid() with { Fields = Fields($$"""{"ok":1,"a":{{objects}}}""") });
        AssertRefused(ProtocolErrorCodes.TooDeep, Valid() with { Fields = Fields($$"""{"a":[1,[2,{{Nested(3)}}]]}""") }, new ProtocolLimits { MaxValueDepth = 4 });
    }

    [Fact]
    public void Values_may_fill_the_size_limit_exactly_and_not_one_byte_more()
    {
        // Size = each field's name plus its value's JSON text: "a" (1) + "\"xxx…\"" (2 + n).
        var limits = new ProtocolLimits { MaxDocumentBytes = 100 };
        var exactly = new string('x', 100 - 1 - 2);

        AssertAccepted(Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{exactly}\"") } }, limits);
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{exactly}x\"") } }, limits);
        AssertAccepted(Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{new string('x', 40)}\""), ["b"] = V($"\"{new string('x', 100 - 2 - 44)}\"") } }, limits);
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{new string('x', 40)}\""), ["b"] = V($"\"{new string('x', 100 - 2 - 43)}\"") } }, limits);
    }

    [Fact]
    public void Values_may_fill_the_default_256_KiB_exactly()
    {
        var exactly = new string('x', (256 * 1024) - 1 - 2);

        AssertAccepted(Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{exactly}\"") } });
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{exactly}x\"") } });
    }

    /// <summary>The limit is in bytes of the UTF-8 message (docs: "size of one mutation's values", 256 KiB): "€" is 3 bytes, not 1.</summary>
    [Fact]
    public void The_size_limit_counts_utf8_bytes_not_characters()
    {
        var limits = new ProtocolLimits { MaxDocumentBytes = 100 };

        // 1 + 2 + 3 × 40 = 123 bytes, although only 43 characters.
        AssertRefused(ProtocolErrorCodes.DocumentTooLarge, Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{new string('€', 40)}\"") } }, limits);
        // 1 + 2 + 3 × 32 + 1 = 100 bytes exactly.
        AssertAccepted(Valid() with { Fields = new Dictionary<string, JsonElement> { ["a"] = V($"\"{new string('€', 32)}x\"") } }, limits);
    }

    [Fact]
    public void A_field_both_written_and_removed_is_invalid() =>
        AssertRefused(ProtocolErrorCodes.InvalidMessage, Valid() with { Fields = Fields("""{"a":1,"b":2}"""), Remove = ["c", "b"] });

    [Fact]
    public void The_first_problem_of_a_push_is_reported_with_its_mutation()
    {
        var error = Limits.Check(Push(Valid(1), Valid(2) with { Kind = MutationKind.Delete }, Valid(3) with { BaseRevision = -1 }));

        AssertError(ProtocolErrorCodes.InvalidMessage, error);
        Assert.StartsWith("Mutation 2: ", error.Message, StringComparison.Ordinal);
    }
}
