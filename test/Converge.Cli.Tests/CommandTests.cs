using System.Diagnostics;
using System.Security.Claims;
using System.Text;
using System.Text.Json.Nodes;
using Converge.Tests.Shared;
using Converge.Work;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Converge.Cli.Tests;

public sealed class CommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("converge-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task The_demo_exits_zero_only_after_every_check_passed()
    {
        var (exit, output, error) = await Converge.RunAsync("demo", "--data", _folder);

        Assert.True(exit == 0, $"exit {exit}\n{output}\n{error}");
        Assert.Matches(@"All \d+ checks passed", output);
        Assert.Contains("every replica ended identical", output, StringComparison.Ordinal);
        Assert.DoesNotContain("FAIL", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_replicas_scripted_with_client_commands_sync_through_serve_and_resolve_a_conflict()
    {
        var port = Converge.FreePort();
        var url = $"http://127.0.0.1:{port}";
        using var server = Converge.Start("serve", "--db", Path.Combine(_folder, "server.db"), "--urls", url, "--api-key", "dev:k=team:1", "--collection", "notes=Manual");
        try
        {
            string[] A(params string[] args) => [.. args, "--db", Path.Combine(_folder, "a.db"), "--server", url, "--key", "k", "--scope", "team:1"];
            string[] B(params string[] args) => [.. args, "--db", Path.Combine(_folder, "b.db"), "--server", url, "--key", "k", "--scope", "team:1"];

            await WaitForServerAsync(url);
            await Ok(A("client", "put", "notes", "n1", """{"title":"draft","n":1}"""));
            await Ok(A("client", "sync"));
            await Ok(B("client", "sync"));
            Assert.Equal("draft", JsonNode.Parse(await Ok(B("client", "get", "notes", "n1")))!["title"]!.GetValue<string>());

            await Ok(A("client", "patch", "notes", "n1", """{"title":"from A"}"""));
            await Ok(B("client", "patch", "notes", "n1", """{"title":"from B"}"""));
            await Ok(A("client", "sync"));
            var report = JsonNode.Parse(await Ok(B("client", "sync", "--json")))!;
            Assert.Equal(1, report["conflictsOpened"]!.GetValue<int>());
            Assert.Equal(0, report["conflictsResolved"]!.GetValue<int>());

            var conflict = JsonNode.Parse((await Ok(B("client", "conflicts", "--json"))).Trim())!;
            Assert.Equal("title", conflict["fields"]![0]!["name"]!.GetValue<string>());
            // The table keeps the id on one line, whatever the width, so it can be copied into `resolve`.
            Assert.Contains(conflict["id"]!.GetValue<string>(), await Ok(B("client", "conflicts")), StringComparison.Ordinal);
            await Ok(B("client", "resolve", conflict["id"]!.GetValue<string>(), "--edited", """{"title":"A and B"}"""));
            var afterB = JsonNode.Parse(await Ok(B("client", "sync", "--json")))!;
            var afterA = JsonNode.Parse(await Ok(A("client", "sync", "--json")))!;
            // B's inbox held the conflict, and the resolution closes it there; A never pulled it, so A has nothing to report.
            Assert.Equal(0, afterB["conflictsOpened"]!.GetValue<int>());
            Assert.Equal(1, afterB["conflictsResolved"]!.GetValue<int>());
            Assert.Equal(0, afterA["conflictsOpened"]!.GetValue<int>());
            Assert.Equal(0, afterA["conflictsResolved"]!.GetValue<int>());

            Assert.Equal("A and B", JsonNode.Parse(await Ok(A("client", "get", "notes", "n1")))!["title"]!.GetValue<string>());
            Assert.Equal("", (await Ok(A("client", "conflicts", "--json"))).Trim());
            var list = await Ok(B("client", "list", "notes", "--json"));
            Assert.Equal("A and B", JsonNode.Parse(list.Trim())!["value"]!["title"]!.GetValue<string>());
            await Ok(B("client", "put", "notes", "n2", """{"title":"second"}"""));
            await Ok(B("client", "put", "notes", "n3", """{"title":"third"}"""));
            var cut = await Converge.RunAsync(B("client", "list", "notes", "--json", "--limit", "2"));
            Assert.Equal(0, cut.ExitCode);
            Assert.Equal(2, cut.Output.Trim().Split('\n').Length);
            Assert.Contains("2 of 3 documents shown; use --limit 3 to see them all.", cut.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("documents shown", (await Converge.RunAsync(B("client", "list", "notes", "--limit", "3"))).Error, StringComparison.Ordinal);

            var missing = await Converge.RunAsync(A("client", "get", "notes", "nope"));
            Assert.Equal(1, missing.ExitCode);
            var refused = await Converge.RunAsync(["client", "sync", "--db", Path.Combine(_folder, "c.db"), "--server", url, "--key", "wrong", "--scope", "team:1"]);
            Assert.Equal(3, refused.ExitCode);
            Assert.Contains("unauthenticated", refused.Error, StringComparison.Ordinal);
            var badJson = await Converge.RunAsync(A("client", "put", "notes", "n2", "not json"));
            Assert.Equal(2, badJson.ExitCode);
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Serve_accepts_jwts_signed_with_the_configured_key_and_refuses_forged_ones()
    {
        var port = Converge.FreePort();
        var url = $"http://127.0.0.1:{port}";
        var keyBytes = Encoding.UTF8.GetBytes("a development signing key, long enough for HS256");
        using var server = Converge.Start(
            "serve", "--db", Path.Combine(_folder, "server.db"), "--urls", url,
            "--jwt-issuer", "converge-tests", "--jwt-audience", "converge", "--jwt-signing-key", Convert.ToBase64String(keyBytes));
        try
        {
            await WaitForServerAsync(url);
            var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = "converge-tests",
                Audience = "converge",
                Subject = new ClaimsIdentity([new Claim("sub", "carol"), new Claim("converge:scope", "user:carol")]),
                SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(keyBytes), SecurityAlgorithms.HmacSha256),
            });
            string[] Carol(string key, string scope, params string[] args) => [.. args, "--db", Path.Combine(_folder, $"carol-{scope}.db"), "--server", url, "--key", key, "--scope", scope];

            await Ok(Carol(token, "user:carol", "client", "put", "notes", "n", """{"by":"jwt"}"""));
            Assert.Contains("pushed 1", await Ok(Carol(token, "user:carol", "client", "sync")), StringComparison.Ordinal);

            var foreign = await Converge.RunAsync(Carol(token, "user:dave", "client", "sync"));
            Assert.Equal(3, foreign.ExitCode);
            Assert.Contains("scope_forbidden", foreign.Error, StringComparison.Ordinal);
            var forged = await Converge.RunAsync(Carol(token[..^4] + "AAAA", "user:carol", "client", "sync"));
            Assert.Equal(3, forged.ExitCode);
            Assert.Contains("unauthenticated", forged.Error, StringComparison.Ordinal);
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Watch_prints_a_change_written_by_another_replica_as_it_arrives()
    {
        var port = Converge.FreePort();
        var url = $"http://127.0.0.1:{port}";
        using var server = Converge.Start("serve", "--db", Path.Combine(_folder, "server.db"), "--urls", url, "--api-key", "dev:k=team:1");
        Process? watch = null;
        try
        {
            await WaitForServerAsync(url);
            watch = Converge.Start("client", "watch", "notes", "--db", Path.Combine(_folder, "w.db"), "--server", url, "--key", "k", "--scope", "team:1");
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            while (await watch.StandardError.ReadLineAsync(timeout.Token) is { } status && status != "live: Live")
            {
                Assert.DoesNotContain("Offline", status, StringComparison.Ordinal);
            }

            await Ok(["client", "put", "notes", "n1", """{"title":"hello"}""", "--db", Path.Combine(_folder, "a.db"), "--server", url, "--key", "k", "--scope", "team:1"]);
            await Ok(["client", "sync", "--db", Path.Combine(_folder, "a.db"), "--server", url, "--key", "k", "--scope", "team:1"]);

            var line = JsonNode.Parse((await watch.StandardOutput.ReadLineAsync(timeout.Token))!)!;
            Assert.Equal("remote", line["origin"]!.GetValue<string>());
            Assert.Equal("n1", line["id"]!.GetValue<string>());
            Assert.Equal("hello", line["value"]!["title"]!.GetValue<string>());
        }
        finally
        {
            watch?.Kill();
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Two_serve_processes_on_one_postgres_database_form_a_cluster_that_delivers_live_across_nodes()
    {
        var database = await (await PostgresServer.GetAsync()).CreateDatabaseAsync();
        var (url1, url2) = ($"http://127.0.0.1:{Converge.FreePort()}", $"http://127.0.0.1:{Converge.FreePort()}");
        using var node1 = Converge.Start("serve", "--postgres", database, "--urls", url1, "--api-key", "dev:k=team:1");
        using var node2 = Converge.Start("serve", "--postgres", database, "--urls", url2, "--api-key", "dev:k=team:1");
        Process? watch = null;
        try
        {
            await WaitForServerAsync(url1);
            await WaitForServerAsync(url2);
            watch = Converge.Start("client", "watch", "notes", "--db", Path.Combine(_folder, "w.db"), "--server", url2, "--key", "k", "--scope", "team:1");
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            while (await watch.StandardError.ReadLineAsync(timeout.Token) is { } status && status != "live: Live")
            {
                Assert.DoesNotContain("Offline", status, StringComparison.Ordinal);
            }

            string[] A(params string[] args) => [.. args, "--db", Path.Combine(_folder, "a.db"), "--server", url1, "--key", "k", "--scope", "team:1"];
            await Ok(A("client", "put", "notes", "n1", """{"title":"through node 1"}"""));
            await Ok(A("client", "sync"));

            var line = JsonNode.Parse((await watch.StandardOutput.ReadLineAsync(timeout.Token))!)!;
            Assert.Equal(("remote", "n1", "through node 1"), (line["origin"]!.GetValue<string>(), line["id"]!.GetValue<string>(), line["value"]!["title"]!.GetValue<string>()));
        }
        finally
        {
            watch?.Kill();
            node1.Kill();
            node2.Kill();
            await node1.WaitForExitAsync();
            await node2.WaitForExitAsync();
            await (await PostgresServer.GetAsync()).DropDatabaseAsync(database);
        }
    }

    [Fact]
    public async Task Work_commands_list_and_cancel_a_postgres_work_store_and_never_create_one()
    {
        var server = await PostgresServer.GetAsync();
        var database = await server.CreateDatabaseAsync();
        try
        {
            var keep = new OneTimeWorkRequestBuilder("report").SetInitialDelay(TimeSpan.FromDays(1)).Build();
            var drop = new OneTimeWorkRequestBuilder("report").SetInitialDelay(TimeSpan.FromDays(1)).AddTag("nightly").Build();
            var options = new WorkManagerOptions { EnqueueOnly = true }.UsePostgreSql(database, s => s.Schema = "ops_work");
            await using (var manager = new WorkManager(options, new WorkerRegistry()))
            {
                await manager.EnqueueAsync([keep, drop]);
            }

            var (exit, output, error) = await Converge.RunAsync("work", "list", "--postgres", database, "--schema", "ops_work", "--json");
            Assert.True(exit == 0, error);
            var listed = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal([keep.Id, drop.Id], listed.Select(j => j["id"]!.GetValue<Guid>()));

            (exit, output, error) = await Converge.RunAsync("work", "cancel", "--postgres", database, "--schema", "ops_work", "--tag", "nightly");
            Assert.True(exit == 0, error);
            Assert.Contains("Cancelled 1 work item.", output, StringComparison.Ordinal);
            (_, output, _) = await Converge.RunAsync("work", "list", "--postgres", database, "--schema", "ops_work", "--state", "Cancelled", "--json");
            Assert.Equal(drop.Id, JsonNode.Parse(output.Trim())!["id"]!.GetValue<Guid>());

            (exit, output, _) = await Converge.RunAsync("work", "list", "--postgres", database, "--schema", "ops_wrok");
            Assert.Equal(2, exit);
            Assert.Contains("No work store in schema 'ops_wrok'", output, StringComparison.Ordinal);
            await using var connection = new Npgsql.NpgsqlConnection(database);
            await connection.OpenAsync();
            await using var exists = new Npgsql.NpgsqlCommand("SELECT to_regnamespace('ops_wrok') IS NOT NULL", connection);
            Assert.False((bool)(await exists.ExecuteScalarAsync())!);

            (exit, output, _) = await Converge.RunAsync("work", "list", "--postgres", database, "--db", Path.Combine(_folder, "w.db"));
            Assert.Equal(2, exit);
            Assert.Contains("one of them", output, StringComparison.Ordinal);
        }
        finally
        {
            await server.DropDatabaseAsync(database);
        }
    }

    [Fact]
    public async Task A_sync_with_no_server_listening_says_unreachable()
    {
        var url = $"http://127.0.0.1:{Converge.FreePort()}";
        var (exit, _, error) = await Converge.RunAsync("client", "sync", "--db", Path.Combine(_folder, "a.db"), "--server", url, "--scope", "s");

        Assert.Equal(4, exit);
        Assert.Contains("unreachable", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_restored_rotates_the_epoch_of_an_existing_store_and_explains_when_to_use_it()
    {
        var help = await Ok(["serve", "--help"]);
        Assert.Contains("--restored", help, StringComparison.Ordinal);
        Assert.Contains("restoring the database from a backup", help, StringComparison.Ordinal);

        var (exit, output, error) = await Converge.RunAsync("serve", "--db", Path.Combine(_folder, "missing.db"), "--restored");
        Assert.Equal(2, exit);
        Assert.Contains("no Converge store", output + error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_folder, "missing.db")));
    }

    private static async Task<string> Ok(string[] args)
    {
        var (exit, output, error) = await Converge.RunAsync(args);
        Assert.True(exit == 0, $"converge {string.Join(' ', args)} exited {exit}: {error}{output}");
        return output;
    }

    internal static async Task WaitForServerAsync(string url)
    {
        using var http = new HttpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (true)
        {
            try
            {
                using var response = await http.GetAsync(url + "/converge/v1/health", timeout.Token);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet: the server process is still starting.
            }

            await Task.Delay(50, timeout.Token);
        }
    }
}
