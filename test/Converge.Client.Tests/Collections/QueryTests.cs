using System.Text.Json.Nodes;
using Converge.Client.Tests.Infrastructure;

namespace Converge.Client.Tests.Collections;

public sealed class QueryTests : IAsyncLifetime
{
    private readonly TestFolder _folder = new();
    private ConvergeClient _client = null!;
    private DocumentCollection<JsonObject> _items = null!;

    public async Task InitializeAsync()
    {
        _client = await _folder.OpenAsync();
        _items = _client.Collection<JsonObject>("items");
        await _items.PutAsync("b2", new JsonObject { ["kind"] = "tool", ["price"] = 5, ["inStock"] = true });
        await _items.PutAsync("a1", new JsonObject { ["kind"] = "food", ["price"] = 2.5, ["inStock"] = false });
        await _items.PutAsync("a2", new JsonObject { ["kind"] = "food", ["price"] = 5, ["inStock"] = true });
        await _items.PutAsync("a10", new JsonObject { ["kind"] = "food", ["price"] = null });
        await _items.PutAsync("c1", new JsonObject { ["kind"] = "tool" });
        await _items.PutAsync("gone", new JsonObject { ["kind"] = "food", ["price"] = 1 });
        await _items.DeleteAsync("gone");
        await _client.Collection<JsonObject>("other").PutAsync("a3", new JsonObject { ["kind"] = "food" });
        await _client.Collection<JsonObject>("items", "team:42").PutAsync("a4", new JsonObject { ["kind"] = "food" });
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        _folder.Dispose();
    }

    private static async Task<string[]> Ids(DocumentQuery<JsonObject> query) =>
        (await query.ToPageAsync()).Items.Select(d => d.Id).ToArray();

    [Fact]
    public async Task All_live_documents_of_the_collection_and_scope_ordered_by_id()
    {
        Assert.Equal(["a1", "a10", "a2", "b2", "c1"], await Ids(_items.Query()));
        Assert.Equal(["c1", "b2", "a2", "a10", "a1"], await Ids(_items.Query().OrderById(descending: true)));
        Assert.Equal(5, await _items.Query().CountAsync());
        Assert.Equal("tool", (string?)(await _items.Query().ToListAsync())[3]["kind"]);
    }

    [Fact]
    public async Task Ids_by_prefix()
    {
        Assert.Equal(["a1", "a10", "a2"], await Ids(_items.Query().WhereIdStartsWith("a")));
        Assert.Equal(["a1", "a10"], await Ids(_items.Query().WhereIdStartsWith("a1")));
        Assert.Empty(await Ids(_items.Query().WhereIdStartsWith("z")));
        Assert.Equal(5, (await Ids(_items.Query().WhereIdStartsWith(""))).Length);
    }

    [Fact]
    public async Task Prefixes_compare_ordinally_even_past_ascii()
    {
        foreach (var id in new[] { "é", "éa", "é\U0001F600", "f", "e\uffff", "\U0001F600x" })
        {
            await _items.PutAsync(id, new JsonObject { ["kind"] = "u" });
        }

        Assert.Equal(["é", "éa", "é\U0001F600"], await Ids(_items.Query().WhereIdStartsWith("é")));
        Assert.Equal(["\U0001F600x"], await Ids(_items.Query().WhereIdStartsWith("\U0001F600")));
    }

    [Fact]
    public async Task Filters_by_a_field_value_of_each_scalar_type()
    {
        Assert.Equal(["a1", "a10", "a2"], await Ids(_items.Query().Where("kind", "food")));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Where("price", 5)));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Where("price", 5.0)));
        Assert.Equal(["a1"], await Ids(_items.Query().Where("price", 2.5)));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Where("inStock", true)));
        Assert.Equal(["a1"], await Ids(_items.Query().Where("inStock", false)));
        Assert.Equal(["a10"], await Ids(_items.Query().Where("price", (string?)null)));
        Assert.Equal(["a2"], await Ids(_items.Query().Where("kind", "food").Where("price", 5)));
        Assert.Equal(["a2"], await Ids(_items.Query().Where("kind", "food").WhereIdStartsWith("a2")));
        Assert.Equal(2, await _items.Query().Where("kind", "tool").CountAsync());
    }

    [Fact]
    public async Task Filters_match_the_json_type_not_only_the_value()
    {
        await _items.PutAsync("s", new JsonObject { ["price"] = "5", ["inStock"] = 1 });

        Assert.Equal(["s"], await Ids(_items.Query().Where("price", "5")));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Where("price", 5)));
        Assert.Equal(["s"], await Ids(_items.Query().Where("inStock", 1)));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Where("inStock", true)));
        Assert.Throws<ArgumentException>(() => _items.Query().Where("price", Server.Json("[5]")));
    }

    [Fact]
    public async Task Orders_by_a_field_then_id_with_missing_and_null_first()
    {
        Assert.Equal(["a10", "c1", "a1", "a2", "b2"], await Ids(_items.Query().OrderBy("price")));
        Assert.Equal(["b2", "a2", "a1", "c1", "a10"], await Ids(_items.Query().OrderBy("price", descending: true)));
        Assert.Equal(["a1", "a10", "a2", "b2", "c1"], await Ids(_items.Query().OrderBy("kind")));
    }

    [Fact]
    public async Task Skip_and_limit_page_through_the_results()
    {
        Assert.Equal(["a1", "a10"], await Ids(_items.Query().Limit(2)));
        Assert.Equal(["a2", "b2"], await Ids(_items.Query().Skip(2).Limit(2)));
        Assert.Equal(["c1"], await Ids(_items.Query().Skip(4)));
        Assert.Equal("food", (string?)(await _items.Query().OrderBy("kind").FirstOrDefaultAsync())!["kind"]);
        Assert.Null(await _items.Query().Where("kind", "none").FirstOrDefaultAsync());
        Assert.Throws<ArgumentOutOfRangeException>(() => _items.Query().Limit(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => _items.Query().Skip(-1));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData(null, true)]
    [InlineData("price", false)]
    [InlineData("price", true)]
    [InlineData("kind", false)]
    [InlineData("kind", true)]
    public async Task Keyset_pages_return_every_document_once_in_order(string? field, bool descending)
    {
        for (var i = 0; i < 23; i++)
        {
            var doc = new JsonObject { ["kind"] = i % 3 == 0 ? null : $"k{i % 4}" };
            if (i % 5 != 0)
            {
                doc["price"] = i % 7 == 0 ? 1.5 : i % 4;
            }

            await _items.PutAsync($"x{i:00}", doc);
        }

        var query = field is null ? _items.Query().OrderById(descending) : _items.Query().OrderBy(field, descending);
        var all = await Ids(query);
        var paged = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var page = await (token is null ? query : query.After(token)).Limit(4).ToPageAsync();
            paged.AddRange(page.Items.Select(d => d.Id));
            token = page.ContinuationToken;
            pages++;
        }
        while (token is not null);

        Assert.Equal(28, all.Length);
        Assert.Equal(all, paged);
        Assert.Equal(7, pages);
    }

    [Fact]
    public async Task A_continuation_token_of_another_order_or_not_a_token_is_refused()
    {
        var page = await _items.Query().OrderBy("price").Limit(2).ToPageAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => _items.Query().OrderById().After(page.ContinuationToken!).ToPageAsync());
        Assert.Throws<ArgumentException>(() => _items.Query().After("not-a-token"));
    }

    [Fact]
    public async Task Queries_see_pending_local_writes()
    {
        await _items.PatchAsync("c1", new JsonObject { ["kind"] = "food" });

        Assert.Equal(["a1", "a10", "a2", "c1"], await Ids(_items.Query().Where("kind", "food")));
    }

    [Fact]
    public async Task EnsureIndex_creates_a_partial_json_extract_index_that_queries_use()
    {
        await _items.EnsureIndexAsync("kind");
        await _items.EnsureIndexAsync("kind");
        await _client.Collection<JsonObject>("other").EnsureIndexAsync("kind");

        var sql = Inspect.Query(_client, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'documents_field_%' ORDER BY sql;");
        Assert.Equal(2, sql.Count);
        Assert.Contains(sql, s => s.Contains("""json_extract(local_value, '$."kind"')""", StringComparison.Ordinal) && s.EndsWith("WHERE collection = 'items'", StringComparison.Ordinal));
        Assert.Contains(sql, s => s.EndsWith("WHERE collection = 'other'", StringComparison.Ordinal));

        var filter = _items.Query().Where("kind", "food").ExplainSql().Replace("$scope", "'user:alice'", StringComparison.Ordinal).Replace("$f0", "'food'", StringComparison.Ordinal);
        var plan = string.Join("\n", Inspect.Query(_client, "EXPLAIN QUERY PLAN " + filter));
        Assert.Contains("USING INDEX documents_field_", plan, StringComparison.Ordinal);
        var order = _items.Query().OrderBy("kind").ExplainSql().Replace("$scope", "'user:alice'", StringComparison.Ordinal);
        var orderPlan = string.Join("\n", Inspect.Query(_client, "EXPLAIN QUERY PLAN " + order));
        Assert.Contains("USING INDEX documents_field_", orderPlan, StringComparison.Ordinal);
        Assert.DoesNotContain("TEMP B-TREE", orderPlan, StringComparison.Ordinal);

        Assert.Equal(["a1", "a10", "a2"], await Ids(_items.Query().Where("kind", "food")));
    }

    [Fact]
    public async Task Names_with_quotes_are_safe_in_indexes_and_queries()
    {
        var odd = _client.Collection<JsonObject>("it's");
        await odd.PutAsync("1", new JsonObject { ["o'k"] = 1 });

        await odd.EnsureIndexAsync("o'k");

        Assert.Single(await odd.Query().Where("o'k", 1).ToListAsync());
        Assert.Single(await odd.Query().OrderBy("o'k").ToListAsync());
    }
}
