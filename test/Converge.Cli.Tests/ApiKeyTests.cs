using System.Text;

namespace Converge.Cli.Tests;

/// <summary>`serve --api-key NAME:SECRET=SCOPE[,SCOPE…]`: the name identifies the principal, the secret stays out of logs and the database.</summary>
public sealed class ApiKeyTests : IDisposable
{
    private const string Secret = "S3cret-0123456789abcdef";

    private readonly string _folder = Directory.CreateTempSubdirectory("converge-cli-keys-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("k=team:1")]
    [InlineData("dev-key=user:alice,team:*")]
    public async Task Serve_refuses_the_old_key_equals_scopes_form_and_shows_the_new_one(string value)
    {
        var (exit, output, error) = await Converge.RunAsync("serve", "--db", Path.Combine(_folder, "s.db"), "--urls", $"http://127.0.0.1:{Converge.FreePort()}", "--api-key", value);

        Assert.Equal(2, exit);
        Assert.Contains("NAME:SECRET=SCOPE", output + error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_folder, "s.db")));
    }

    [Theory]
    [InlineData(":secret=team:1")]
    [InlineData("name:=team:1")]
    [InlineData("name:secret=")]
    [InlineData("name:secret=,")]
    [InlineData("name:sec ret=team:1")]
    public async Task Serve_refuses_an_api_key_without_a_name_a_secret_or_a_scope(string value)
    {
        var (exit, output, error) = await Converge.RunAsync("serve", "--db", Path.Combine(_folder, "s.db"), "--urls", $"http://127.0.0.1:{Converge.FreePort()}", "--api-key", value);

        Assert.Equal(2, exit);
        Assert.Contains("--api-key", output + error, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", (output + error).Replace("NAME:SECRET", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_writes_the_keys_name_and_never_its_secret_to_the_log_and_the_database()
    {
        var url = $"http://127.0.0.1:{Converge.FreePort()}";
        var db = Path.Combine(_folder, "server.db");
        using var server = Converge.Start("serve", "--db", db, "--urls", url, "--api-key", $"svc:{Secret}=team:1");
        var log = new StringBuilder();
        try
        {
            await CommandTests.WaitForServerAsync(url);
            string[] Client(params string[] args) => [.. args, "--db", Path.Combine(_folder, "a.db"), "--server", url, "--key", Secret, "--scope", "team:1"];
            Assert.Equal(0, (await Converge.RunAsync(Client("client", "put", "notes", "n1", """{"title":"hello"}"""))).ExitCode);
            Assert.Equal(0, (await Converge.RunAsync(Client("client", "sync"))).ExitCode);

            // A forbidden request is logged at Information (event 2007) with the principal.
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Secret);
            using var forbidden = await http.GetAsync(url + "/converge/v1/pull?scope=team:2");
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, forbidden.StatusCode);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            while (await server.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                log.AppendLine(line);
                if (line.Contains("may not use scope", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }

        var text = log.ToString();
        Assert.Contains("svc", text, StringComparison.Ordinal);
        Assert.Contains("may not use scope", text, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, text, StringComparison.Ordinal);
        var files = Directory.GetFiles(_folder, "server.db*");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            Assert.DoesNotContain(Secret, Encoding.UTF8.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        }
    }
}
