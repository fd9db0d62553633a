using System.Net;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server.Tests;

/// <summary>Pages are bounded by bytes as well as by count: pulls and conflict lists of large items come in short pages.</summary>
public class PageBoundsTests
{
    private const string Scope = "team:7";
    private const int PageBytes = 64 * 1024;

    private static string Text(int i) => new((char)('a' + (i % 26)), 40_000);

    [Fact]
    public async Task A_pull_of_large_documents_ends_each_page_within_the_page_bytes_and_pages_through_every_document_once()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.MaxPageBytes = PageBytes);
        var device = new Device(time);
        await server.Alice.PushAsync(device.Batch([.. Enumerable.Range(0, 10).Select(i => device.Put(Scope, "notes", $"n{i}", 0, $$"""{"body":"{{Text(i)}}"}"""))]));

        var pages = await server.Alice.PullAllAsync(Scope, limit: 100);

        // 40 KB documents: a second one would take a page past 64 KiB.
        Assert.Equal(10, pages.Count);
        Assert.All(pages, p => Assert.Single(p.Changes));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"n{i}"), pages.SelectMany(p => p.Changes).Select(c => c.DocumentId));
        Assert.All(pages[..^1], p => Assert.True(p.HasMore));
        Assert.False(pages[^1].HasMore);
    }

    [Fact]
    public async Task A_document_larger_than_the_page_bytes_still_comes_alone_in_its_page()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.MaxPageBytes = PageBytes);
        var device = new Device(time);
        var big = new string('x', 200_000);
        await server.Alice.PushAsync(device.Batch(device.Put(Scope, "notes", "big", 0, $$"""{"body":"{{big}}"}"""), device.Put(Scope, "notes", "small", 0, """{"body":"s"}""")));

        var pages = await server.Alice.PullAllAsync(Scope);

        Assert.Equal(["big", "small"], pages.SelectMany(p => p.Changes).Select(c => c.DocumentId));
        Assert.Equal(big, pages[0].Changes.Single().State.Fields["body"].Value.GetString());
    }

    [Fact]
    public async Task The_conflict_list_is_paged_by_limit_and_by_bytes_with_a_link_to_the_next_page()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o =>
        {
            o.MaxPageBytes = PageBytes;
            o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual });
        });
        var owner = new Device(time);
        var other = new Device(time);
        await server.Alice.PushAsync(owner.Batch([.. Enumerable.Range(0, 6).Select(i => owner.Put(Scope, "notes", $"n{i}", 0, """{"body":"original"}"""))]));
        var revisions = (await server.Alice.PullAllAsync(Scope)).SelectMany(p => p.Changes).ToDictionary(c => c.DocumentId, c => c.State.Revision);
        await server.Alice.PushAsync(owner.Batch([.. Enumerable.Range(0, 6).Select(i => owner.Patch(Scope, "notes", $"n{i}", revisions[$"n{i}"], """{"body":"owner's"}"""))]));

        // Six open conflicts of about 40 KB each (the device's contested value).
        var push = await server.Bob.PushAsync(other.Batch([.. Enumerable.Range(0, 6).Select(i => other.Patch(Scope, "notes", $"n{i}", revisions[$"n{i}"], $$"""{"body":"{{Text(i)}}"}"""))]));
        Assert.All(push.Results, r => Assert.Equal(MutationStatus.Conflict, r.Status));

        var byBytes = await FollowAsync(server.Alice, $"v1/conflicts?scope={Uri.EscapeDataString(Scope)}");
        Assert.Equal(6, byBytes.Count);
        Assert.All(byBytes, page => Assert.Single(page));
        Assert.Equal(push.Results.Select(r => r.ConflictId), byBytes.SelectMany(p => p).Select(c => c.Id));

        // Small records page by count.
        const string Small = "team:8";
        await server.Alice.PushAsync(owner.Batch([.. Enumerable.Range(0, 6).Select(i => owner.Put(Small, "notes", $"n{i}", 0, """{"body":"original"}"""))]));
        var smallRevisions = (await server.Alice.PullAllAsync(Small)).SelectMany(p => p.Changes).ToDictionary(c => c.DocumentId, c => c.State.Revision);
        await server.Alice.PushAsync(owner.Batch([.. Enumerable.Range(0, 6).Select(i => owner.Patch(Small, "notes", $"n{i}", smallRevisions[$"n{i}"], """{"body":"owner's"}"""))]));
        await server.Bob.PushAsync(other.Batch([.. Enumerable.Range(0, 6).Select(i => other.Patch(Small, "notes", $"n{i}", smallRevisions[$"n{i}"], """{"body":"other's"}"""))]));
        var byCount = await FollowAsync(server.Alice, $"v1/conflicts?scope={Uri.EscapeDataString(Small)}&limit=4");
        Assert.Equal([4, 2], byCount.Select(p => p.Count));

        using var bad = await server.Alice.GetAsync($"v1/conflicts?scope={Uri.EscapeDataString(Scope)}&after=-1");
        await Api.AssertProblemAsync(bad, HttpStatusCode.BadRequest, ProtocolErrorCodes.InvalidMessage);
    }

    [Fact]
    public async Task A_conflict_list_that_fits_one_page_has_no_next_link()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        using var response = await server.Alice.GetAsync($"v1/conflicts?scope={Uri.EscapeDataString(Scope)}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Link"));
    }

    /// <summary>Reads a conflict list page by page, following each <c>Link: rel="next"</c>.</summary>
    private static async Task<List<IReadOnlyList<ConflictRecord>>> FollowAsync(HttpClient client, string first)
    {
        var pages = new List<IReadOnlyList<ConflictRecord>>();
        string? next = first;
        while (next is not null && pages.Count < 100)
        {
            using var response = await client.GetAsync(next);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            pages.Add((await response.Content.ReadFromJsonAsync(ProtocolJson.ConflictRecords))!);
            next = null;
            if (response.Headers.TryGetValues("Link", out var links))
            {
                var link = Assert.Single(links);
                Assert.EndsWith("; rel=\"next\"", link, StringComparison.Ordinal);
                var target = link[1..link.IndexOf('>', StringComparison.Ordinal)];

                // The link is rooted at the server; the client's base address ends with the endpoints' base path.
                next = new Uri(client.BaseAddress!, target).ToString();
            }
        }

        return pages;
    }
}
