using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Converge.Client.Tests.Infrastructure;
using Converge.Protocol.Messages;

namespace Converge.Client.Tests.Collections;

public sealed record Todo(string Title, bool Done = false, int Priority = 0);

[JsonSerializable(typeof(Todo))]
internal sealed partial class TestJsonContext : JsonSerializerContext;

public sealed class CollectionTests : IDisposable
{
    private readonly TestFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Put_then_get_returns_the_document_and_absent_ids_give_null()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");

        await todos.PutAsync("t1", new Todo("Buy milk", Priority: 2));

        Assert.Equal(new Todo("Buy milk", Priority: 2), await todos.GetAsync("t1"));
        Assert.Null(await todos.GetAsync("nope"));
        Assert.Equal("""{"title":"Buy milk","done":false,"priority":2}""", Inspect.LocalJson(client, "todos", "t1"));
    }

    [Fact]
    public async Task Put_replaces_the_whole_document_and_removes_the_fields_it_lacks()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("d", new JsonObject { ["a"] = 1, ["b"] = 2, ["c"] = 3 });

        await docs.PutAsync("d", new JsonObject { ["a"] = 10, ["d"] = 4 });

        Assert.Equal("""{"a":10,"d":4}""", Inspect.LocalJson(client, "docs", "d"));
        var second = Inspect.Outbox(client)[1];
        Assert.Equal(MutationKind.Put, second.Kind);
        Assert.Equal(["b", "c"], second.Remove!.Order());
        Assert.Equal(["a", "d"], second.Fields!.Keys.Order());
    }

    [Fact]
    public async Task Patch_writes_only_the_given_fields()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await todos.PutAsync("t1", new Todo("Buy milk", Priority: 2));

        await todos.PatchAsync("t1", new { done = true });
        await todos.PatchAsync("t1", new JsonObject { ["priority"] = 5, ["note"] = "x" });

        Assert.Equal(new Todo("Buy milk", Done: true, Priority: 5), await todos.GetAsync("t1"));
        Assert.Equal("""{"title":"Buy milk","done":true,"priority":5,"note":"x"}""", Inspect.LocalJson(client, "todos", "t1"));
        var patches = Inspect.Outbox(client).Skip(1).ToList();
        Assert.All(patches, m => Assert.Equal(MutationKind.Patch, m.Kind));
        Assert.Equal(["done"], patches[0].Fields!.Keys);
        Assert.Null(patches[0].Remove);
        Assert.Equal(["priority", "note"], patches[1].Fields!.Keys);
    }

    [Fact]
    public async Task Patch_of_a_missing_document_creates_it()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        await docs.PatchAsync("new", new JsonObject { ["x"] = true });

        Assert.Equal("""{"x":true}""", Inspect.LocalJson(client, "docs", "new"));
    }

    [Fact]
    public async Task Delete_hides_the_document_and_a_second_delete_writes_nothing()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");
        await todos.PutAsync("t1", new Todo("a"));

        Assert.True(await todos.DeleteAsync("t1"));
        Assert.False(await todos.DeleteAsync("t1"));

        Assert.Null(await todos.GetAsync("t1"));
        Assert.Equal([MutationKind.Put, MutationKind.Delete], Inspect.Outbox(client).Select(m => m.Kind));
        var delete = Inspect.Outbox(client)[1];
        Assert.Null(delete.Fields);
        Assert.Null(delete.BaseValues);
    }

    [Fact]
    public async Task A_document_never_seen_can_be_deleted_and_the_delete_is_queued()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection<Todo>("todos");

        Assert.True(await todos.DeleteAsync("server-only"));

        Assert.Equal(MutationKind.Delete, Assert.Single(Inspect.Outbox(client)).Kind);
        Assert.Equal(1, Inspect.Row(client, "todos", "server-only")!.Value.Pending);
    }

    [Fact]
    public async Task A_deleted_document_refuses_patch_and_increment_and_a_put_recreates_it()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("d", new JsonObject { ["n"] = 1 });
        await docs.DeleteAsync("d");

        await Assert.ThrowsAsync<InvalidOperationException>(() => docs.PatchAsync("d", new JsonObject { ["n"] = 2 }));
        await Assert.ThrowsAsync<InvalidOperationException>(() => docs.IncrementAsync("d", "n", 1));
        Assert.Equal(2, Inspect.Outbox(client).Count);

        await docs.PutAsync("d", new JsonObject { ["m"] = 3 });
        Assert.Equal("""{"m":3}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task Increment_adds_to_a_counter_and_a_missing_field_counts_as_zero()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("counters");

        await docs.IncrementAsync("c", "hits", 5);
        await docs.IncrementAsync("c", "hits", -2);
        await docs.IncrementAsync("c", "score", 0.5);
        await docs.IncrementAsync("c", "score", 1.25);

        Assert.Equal("""{"hits":3,"score":1.75}""", Inspect.LocalJson(client, "counters", "c"));
        var outbox = Inspect.Outbox(client);
        Assert.All(outbox, m => Assert.Equal(MutationKind.Increment, m.Kind));
        Assert.Equal(-2, outbox[1].Fields!["hits"].GetInt64());
    }

    [Fact]
    public async Task Increment_of_a_non_number_or_past_the_64_bit_range_is_refused_and_changes_nothing()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("counters");
        await docs.PutAsync("c", new JsonObject { ["name"] = "x", ["big"] = long.MaxValue - 1 });

        await Assert.ThrowsAsync<InvalidOperationException>(() => docs.IncrementAsync("c", "name", 1));
        await Assert.ThrowsAsync<InvalidOperationException>(() => docs.IncrementAsync("c", "big", 2));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.IncrementAsync("c", "big", double.NaN));

        Assert.Single(Inspect.Outbox(client));
        Assert.Equal($$"""{"name":"x","big":{{long.MaxValue - 1}}}""", Inspect.LocalJson(client, "counters", "c"));
    }

    [Fact]
    public async Task Each_write_leaves_one_mutation_stamped_by_the_clock_with_the_server_revision_and_base_values()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        await Server.ApplyAsync(client, 7, Server.Change("docs", "d", Server.State("""{"a":1,"b":"two","c":[3]}""", 7)));

        await docs.PatchAsync("d", new JsonObject { ["a"] = 10, ["z"] = 0 });
        await docs.PutAsync("d", new JsonObject { ["a"] = 11, ["b"] = "2" });
        await docs.IncrementAsync("d", "a", 1);
        await docs.DeleteAsync("d");

        var outbox = Inspect.Outbox(client);
        Assert.Equal(4, outbox.Count);
        Assert.Equal([1L, 2, 3, 4], outbox.Select(m => m.Id));
        Assert.All(outbox, m => Assert.Equal(7, m.BaseRevision));
        Assert.All(outbox, m => Assert.Equal(("user:alice", "docs", "d"), (m.Scope, m.Collection, m.DocumentId)));
        Assert.All(outbox, m => Assert.Equal(ulong.Parse(client.ClientId, System.Globalization.NumberStyles.HexNumber), m.Hlc.Node));
        Assert.True(outbox.Zip(outbox.Skip(1)).All(p => p.First.Hlc < p.Second.Hlc));

        // Base values: the server state's values of the written (and removed) fields; a field it lacks is left out.
        Assert.Equal(["a"], outbox[0].BaseValues!.Keys);
        Assert.Equal(1, outbox[0].BaseValues!["a"].GetInt32());
        Assert.Equal(["c", "z"], outbox[1].Remove!.Order());
        Assert.Equal(["a", "b", "c"], outbox[1].BaseValues!.Keys.Order());
        Assert.Equal("[3]", outbox[1].BaseValues!["c"].GetRawText());
        Assert.Equal(1, outbox[2].BaseValues!["a"].GetInt32());
        Assert.Null(outbox[3].BaseValues);
        Assert.Equal(4, Inspect.Row(client, "docs", "d")!.Value.Pending);
    }

    [Fact]
    public async Task Mutation_ids_keep_increasing_after_the_outbox_drains_and_across_restarts()
    {
        await using (var client = await _folder.OpenAsync())
        {
            var docs = client.Collection<JsonObject>("docs");
            await docs.PutAsync("a", new JsonObject { ["x"] = 1 });
            await docs.PutAsync("b", new JsonObject { ["x"] = 1 });
            await client.Store.WriteAsync(tx => { tx.Outbox.Remove(1); tx.Outbox.Remove(2); return 0; }, default);
        }

        await using (var client = await _folder.OpenAsync())
        {
            await client.Collection<JsonObject>("docs").PutAsync("c", new JsonObject { ["x"] = 1 });
            Assert.Equal(3, Assert.Single(Inspect.Outbox(client)).Id);
        }
    }

    [Fact]
    public async Task Invalid_names_and_ids_are_refused_and_nothing_changes()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");
        var longName = new string('n', 129);
        var longId = new string('i', 257);

        Assert.Throws<ArgumentException>(() => client.Collection<JsonObject>(""));
        Assert.Throws<ArgumentException>(() => client.Collection<JsonObject>(longName));
        Assert.Throws<ArgumentException>(() => client.Collection<JsonObject>("bad\u0001name"));
        Assert.Throws<ArgumentException>(() => client.Collection<JsonObject>("docs", "user:bob"));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("", new JsonObject { ["a"] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync(longId, new JsonObject { ["a"] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("line\nbreak", new JsonObject { ["a"] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("d", new JsonObject { [""] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("d", new JsonObject { [longName] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PatchAsync("d", new JsonObject()));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PatchAsync("d", new JsonObject { ["tab\t"] = 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PatchAsync("d", 42));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.IncrementAsync("d", "", 1));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.DeleteAsync(longId));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.GetAsync(""));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.EnsureIndexAsync("quo\"te"));
        Assert.Throws<ArgumentException>(() => docs.Query().Where("quo\"te", 1));
        Assert.Throws<ArgumentException>(() => docs.Query().OrderBy(""));

        Assert.Equal(0, Inspect.Count(client, "outbox"));
        Assert.Equal(0, Inspect.Count(client, "documents"));
        Assert.Empty(Inspect.Query(client, "SELECT name FROM sqlite_master WHERE name LIKE 'documents_field_%';"));
    }

    [Fact]
    public async Task A_value_beyond_the_limits_is_refused_and_nothing_changes()
    {
        await using var client = await _folder.OpenAsync(configure: o => o.Limits = new ProtocolLimits { MaxDocumentBytes = 100, MaxValueDepth = 3 });
        var docs = client.Collection<JsonObject>("docs");
        await docs.PutAsync("d", new JsonObject { ["a"] = 1 });

        await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("d", new JsonObject { ["a"] = new string('x', 200) }));
        await Assert.ThrowsAsync<ArgumentException>(() => docs.PatchAsync("d", new JsonObject { ["deep"] = JsonNode.Parse("[[[[1]]]]") }));

        Assert.Single(Inspect.Outbox(client));
        Assert.Equal("""{"a":1}""", Inspect.LocalJson(client, "docs", "d"));
    }

    [Fact]
    public async Task A_value_that_is_not_a_json_object_is_refused()
    {
        await using var client = await _folder.OpenAsync();
        var strings = client.Collection<string>("strings");

        await Assert.ThrowsAsync<ArgumentException>(() => strings.PutAsync("s", "just a string"));
        Assert.Equal(0, Inspect.Count(client, "outbox"));
    }

    [Fact]
    public async Task A_collection_with_source_generated_metadata_reads_and_writes()
    {
        await using var client = await _folder.OpenAsync();
        var todos = client.Collection("todos", TestJsonContext.Default.Todo);

        await todos.PutAsync("t", new Todo("aot"));

        // The generated metadata uses the property names as declared (no camelCase policy).
        Assert.Equal("""{"Title":"aot","Done":false,"Priority":0}""", Inspect.LocalJson(client, "todos", "t"));
        Assert.Equal(new Todo("aot"), await todos.GetAsync("t"));
        Assert.Equal(new Todo("aot"), Assert.Single(await todos.Query().Where("Title", "aot").ToListAsync()));
    }

    [Fact]
    public async Task Scopes_keep_their_documents_apart()
    {
        await using var client = await _folder.OpenAsync();
        var mine = client.Collection<JsonObject>("docs");
        var team = client.Collection<JsonObject>("docs", "team:42");

        await mine.PutAsync("d", new JsonObject { ["who"] = "alice" });
        await team.PutAsync("d", new JsonObject { ["who"] = "team" });

        Assert.Equal("alice", (string?)(await mine.GetAsync("d"))!["who"]);
        Assert.Equal("team", (string?)(await team.GetAsync("d"))!["who"]);
        Assert.Equal(["user:alice", "team:42"], Inspect.Outbox(client).Select(m => m.Scope));
        Assert.Equal("user:alice", client.DefaultScope);
    }

    [Fact]
    public async Task A_second_client_on_the_same_file_is_refused()
    {
        await using var client = await _folder.OpenAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => _folder.OpenAsync());
    }

    [Fact]
    public async Task Invalid_options_are_refused_with_every_problem_listed()
    {
        var options = new ConvergeClientOptions { PushBatchSize = 0, PullPageSize = 6000, BasePath = "converge", ServerUrl = new Uri("ftp://x/") };
        options.Scopes.Add("a");
        options.Scopes.Add("a");

        var e = await Assert.ThrowsAsync<ArgumentException>(() => ConvergeClient.OpenAsync(options));

        foreach (var word in new[] { "DatabasePath", "PushBatchSize", "PullPageSize", "BasePath", "ServerUrl", "twice" })
        {
            Assert.Contains(word, e.Message, StringComparison.Ordinal);
        }

        await Assert.ThrowsAsync<ArgumentException>(() => ConvergeClient.OpenAsync(new ConvergeClientOptions { DatabasePath = _folder.Database }));
    }

    [Theory]
    [InlineData("team:\u202E24")]
    [InlineData("team:4\u200B2")]
    [InlineData("team:42\u2028")]
    [InlineData("\uFEFFteam:42")]
    [InlineData("team:\u0430lice")]
    [InlineData("team 42")]
    [InlineData("team:*")]
    public async Task A_scope_outside_the_safe_characters_fails_at_open_naming_them(string scope)
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => _folder.OpenAsync(configure: o => o.Scopes.Add(scope)));

        Assert.Contains("ASCII letters, digits", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_folder.Database));
    }

    [Fact]
    public async Task Names_and_ids_with_invisible_or_bidi_characters_are_refused_and_other_unicode_is_kept()
    {
        await using var client = await _folder.OpenAsync(configure: o => o.Scopes.Add("team:alice@example.com/x+y=z|w_v-u.t"));
        var docs = client.Collection<JsonObject>("docs");

        foreach (var bad in new[] { "a\u202Eb", "a\u200Bb", "a\u2028b", "a\u2029b", "\uFEFFa", "a\u061Cb", "a\uD800b", "a\uDC00" })
        {
            Assert.Throws<ArgumentException>(() => client.Collection<JsonObject>(bad));
            await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync(bad, new JsonObject { ["a"] = 1 }));
            if (!char.IsSurrogate(bad[^1]) && !char.IsSurrogate(bad[1]))
            {
                // (A lone surrogate in a value's name never reaches the check: serializing the value makes it U+FFFD.)
                await Assert.ThrowsAsync<ArgumentException>(() => docs.PutAsync("d", new JsonObject { [bad] = 1 }));
            }
        }

        Assert.Equal(0, Inspect.Count(client, "outbox"));
        await client.Collection<JsonObject>("Notizen é").PutAsync("日本 🎉", new JsonObject { ["größe"] = 1 });
        Assert.Equal(1, Inspect.Count(client, "outbox"));
    }

    [Fact]
    public async Task Json_element_values_patch_like_objects()
    {
        await using var client = await _folder.OpenAsync();
        var docs = client.Collection<JsonObject>("docs");

        await docs.PatchAsync("d", JsonSerializer.SerializeToElement(new { a = 1 }));

        Assert.Equal("""{"a":1}""", Inspect.LocalJson(client, "docs", "d"));
    }
}
