using Converge.Client.Sync;

namespace Converge.Client.Tests.Sync;

public sealed class SyncHttpTests
{
    [Theory]
    [InlineData("http://127.0.0.1:5000", "/converge", "http://127.0.0.1:5000/converge/v1/")]
    [InlineData("http://127.0.0.1:5000/", "/converge/", "http://127.0.0.1:5000/converge/v1/")]
    [InlineData("https://example.com/app/", "/converge", "https://example.com/app/converge/v1/")]
    [InlineData("https://example.com/app?x=1", "", "https://example.com/app/v1/")]
    public void The_endpoints_sit_under_the_server_url_and_base_path(string server, string basePath, string expected)
    {
        using var http = new SyncHttp(new Uri(server), basePath, null, TimeSpan.FromSeconds(5), null);

        Assert.Equal(expected, http.BaseAddress.ToString());
    }
}
