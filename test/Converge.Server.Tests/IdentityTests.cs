using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Security.Claims;
using System.Text;
using System.Text.Json.Nodes;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Converge.Server.Tests;

/// <summary>Who a principal is: stable identities in separate namespaces, secrets kept out of logs and the store, token lifetimes.</summary>
public class IdentityTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Tokens_without_a_subject_are_refused_so_they_cannot_erase_each_others_writes()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var b = server.CreateClient(Jwt.Create(time, sub: null, scopes: "team:b"));
        using var a = server.CreateClient(Jwt.Create(time, sub: null, scopes: "team:a"));
        var device = new Device(time);

        // B pushes client C with a huge mutation id; A then pushes client C with ids 1 and 2.
        using var first = await b.PostAsync("v1/push", Api.Json(new PushRequest
        {
            ClientId = device.Id,
            Clock = device.Clock.Now(),
            Mutations = [device.Put("team:b", "n", "n", 0, """{"a":1}""") with { Id = 1_000_000_000 }],
        }));
        var own = new Device(time, device.Node);
        using var second = await a.PostAsync("v1/push", Api.Json(own.Batch(own.Put("team:a", "n", "n1", 0, """{"a":1}"""), own.Put("team:a", "n", "n2", 0, """{"a":2}"""))));
        using var pull = await a.GetAsync(Api.PullUri("team:a"));

        var body = await Api.AssertProblemAsync(first, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
        Assert.Contains("no subject", body, StringComparison.Ordinal);
        await Api.AssertProblemAsync(second, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
        await Api.AssertProblemAsync(pull, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
    }

    [Fact]
    public async Task A_token_without_a_subject_is_refused_before_the_live_upgrade()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.SetRequestHeader("Authorization", "Bearer " + Jwt.Create(time, sub: null, scopes: "team:a"));

        await Assert.ThrowsAnyAsync<WebSocketException>(() => socket.ConnectAsync(LiveUri(server, "team:a"), CancellationToken.None));

        Assert.Equal(HttpStatusCode.Unauthorized, socket.HttpStatusCode);
    }

    [Fact]
    public async Task A_token_subject_named_like_an_api_key_cannot_make_the_keys_mutations_duplicates()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var impostor = server.CreateClient(Jwt.Create(time, sub: "alice", scopes: "user:jwt"));
        var victim = new Device(time);
        var attacker = new Device(time, victim.Node);

        var spent = await impostor.PushAsync(new PushRequest
        {
            ClientId = victim.Id,
            Clock = attacker.Clock.Now(),
            Mutations = [attacker.Put("user:jwt", "n", "n", 0, """{"a":1}""") with { Id = 1_000_000_000 }],
        });
        var response = await server.Alice.PushAsync(victim.Batch(victim.Put("user:alice", "n", "n", 0, """{"a":1}""")));

        Assert.Equal(MutationStatus.Applied, spent.Results[0].Status);
        Assert.Equal(MutationStatus.Applied, response.Results[0].Status);
    }

    [Fact]
    public async Task One_subject_from_two_issuers_is_two_principals()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var fromOther = server.CreateClient(Jwt.Create(time, sub: "x", issuer: Jwt.OtherIssuer, scopes: "team:other"));
        using var fromMain = server.CreateClient(Jwt.Create(time, sub: "x", scopes: "team:main"));
        var victim = new Device(time);
        var attacker = new Device(time, victim.Node);

        await fromOther.PushAsync(new PushRequest
        {
            ClientId = victim.Id,
            Clock = attacker.Clock.Now(),
            Mutations = [attacker.Put("team:other", "n", "n", 0, """{"a":1}""") with { Id = 1_000_000_000 }],
        });
        var response = await fromMain.PushAsync(victim.Batch(victim.Put("team:main", "n", "n", 0, """{"a":1}""")));

        Assert.Equal(MutationStatus.Applied, response.Results[0].Status);
    }

    [Fact]
    public async Task A_jwt_expired_beyond_the_30_second_skew_is_refused_over_http_and_one_within_it_is_accepted()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var expiredLongAgo = server.CreateClient(Jwt.Create(time, sub: "carol", scopes: "user:carol", expires: time.GetUtcNow().AddMinutes(-2)));
        using var justExpired = server.CreateClient(Jwt.Create(time, sub: "carol", scopes: "user:carol", expires: time.GetUtcNow().AddSeconds(-10)));

        using var refused = await expiredLongAgo.GetAsync(Api.PullUri("user:carol"));
        using var accepted = await justExpired.GetAsync(Api.PullUri("user:carol"));

        await Api.AssertProblemAsync(refused, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task A_live_connection_stays_open_through_the_skew_after_its_tokens_expiry_and_closes_after_it()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        var expires = time.GetUtcNow().AddMinutes(2);
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + Jwt.Create(time, sub: "carol", scopes: "user:carol", expires: expires));
        await socket.ConnectAsync(LiveUri(server, "user:carol"), CancellationToken.None);
        Assert.Equal("ready", (await ReceiveAsync(socket))!["type"]!.GetValue<string>());
        var device = new Device(time);

        // 10 seconds past the token's expiry, within the 30-second skew the HTTP API also grants: still open.
        time.Advance(expires - time.GetUtcNow() + TimeSpan.FromSeconds(10));
        await SendAsync(socket, device, "user:carol", request: 1);
        JsonNode? answer;
        do
        {
            answer = await ReceiveAsync(socket);
        }
        while (answer?["type"]?.GetValue<string>() == "changes");

        Assert.Equal("pushed", answer?["type"]?.GetValue<string>());

        // Past the skew: the server closes the channel.
        time.Advance(TimeSpan.FromSeconds(21));
        Assert.Null(await ReceiveAsync(socket));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.CloseStatus);
    }

    [Fact]
    public async Task A_live_connection_with_a_token_valid_for_months_opens_and_carries_pushes()
    {
        var time = Jwt.Clock();
        await using var server = await TestServer.StartAsync(time, build: b => Jwt.Add(b));
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + Jwt.Create(time, sub: "carol", scopes: "user:carol", expires: time.GetUtcNow().AddDays(90)));
        await socket.ConnectAsync(LiveUri(server, "user:carol"), CancellationToken.None);
        Assert.Equal("ready", (await ReceiveAsync(socket))!["type"]!.GetValue<string>());

        await SendAsync(socket, new Device(time), "user:carol", request: 1);
        JsonNode? answer;
        do
        {
            answer = await ReceiveAsync(socket);
        }
        while (answer?["type"]?.GetValue<string>() == "changes");

        Assert.Equal("pushed", answer?["type"]?.GetValue<string>());
        Assert.Equal(WebSocketState.Open, socket.State);
    }

    [Fact]
    public async Task No_api_key_secret_reaches_the_log_or_the_clients_table()
    {
        const string Secret = "Sup3r-Secret-Key-0123456789";
        var time = Times.NewFake();
        var log = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(
            time,
            o => o.AddApiKey(Secret, "svc", "svc:1"),
            b => b.Logging.AddProvider(log).SetMinimumLevel(LogLevel.Trace));
        using var client = server.CreateClient(Secret);
        var device = new Device(time);

        await client.PushAsync(device.Batch(device.Put("svc:1", "n", "n", 0, """{"a":1}""")));
        using var forbidden = await client.PostAsync("v1/push", Api.Json(device.Batch(device.Put("user:alice", "n", "n", 0, """{"a":1}"""))));
        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("Authorization", "Bearer " + Secret);
            await socket.ConnectAsync(LiveUri(server, "svc:1"), CancellationToken.None);
            await ReceiveAsync(socket);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
        }

        var principals = ReadPrincipals(server.DatabasePath);
        await server.StopAsync();

        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains(log.Lines, l => l.Contains("svc", StringComparison.Ordinal) && l.Contains("may not use scope", StringComparison.Ordinal));
        Assert.DoesNotContain(log.Lines, l => l.Contains(Secret, StringComparison.Ordinal));
        Assert.NotEmpty(principals);
        Assert.DoesNotContain(principals, p => p.Contains(Secret, StringComparison.Ordinal));
        foreach (var file in Directory.GetFiles(server.Directory, "sync.db*"))
        {
            Assert.DoesNotContain(Secret, Encoding.UTF8.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Client_progress_records_unused_longer_than_the_retention_are_removed_by_compaction()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.CompactionInterval = TimeSpan.FromDays(40));
        var gone = new Device(time);
        var recent = new Device(time);
        await server.Alice.PushAsync(gone.Batch(gone.Put("user:alice", "n", "gone", 0, """{"a":1}""")));
        time.Advance(TimeSpan.FromDays(80));
        await server.Alice.PushAsync(recent.Batch(recent.Put("user:alice", "n", "recent", 0, """{"a":1}""")));
        time.Advance(TimeSpan.FromDays(11)); // gone: unused for 91 days; recent: for 11

        await server.Services.GetRequiredService<ConvergeCompactor>().CompactAsync();

        Assert.Equal([recent.Id], ReadClients(server.DatabasePath));
    }

    [Fact]
    public async Task A_store_from_before_namespaced_keys_keeps_each_devices_progress_and_no_longer_holds_a_secret()
    {
        const string OldCliSecret = "old-cli-secret-0123456789";
        var time = Times.NewFake();
        var directory = Directory.CreateTempSubdirectory("converge-server-test-").FullName;
        try
        {
            void Keys(ConvergeServerOptions o) => o.AddApiKey(OldCliSecret, "svc", "svc:1");
            var alice = new Device(time);
            var svc = new Device(time);
            PushRequest aliceLast, svcLast;
            await using (var server = await TestServer.StartAsync(time, Keys, directory: directory))
            {
                await server.Alice.PushAsync(alice.Batch(alice.Increment("user:alice", "n", "c", """{"n":1}""")));
                aliceLast = alice.Batch(alice.Increment("user:alice", "n", "c", """{"n":1}"""));
                await server.Alice.PushAsync(aliceLast);
                using var client = server.CreateClient(OldCliSecret);
                svcLast = svc.Batch(svc.Increment("svc:1", "n", "c", """{"n":1}"""));
                await client.PushAsync(svcLast);
                await server.StopAsync();
            }

            // What an earlier version left: schema 1, no last-used time, keys without namespace (svc's by its secret, as
            // `converge serve --api-key KEY=SCOPES` made them).
            Downgrade(Path.Combine(directory, "sync.db"), ("apikey:alice", "alice"), ("apikey:svc", OldCliSecret));

            await using var upgraded = await TestServer.StartAsync(time, Keys, directory: directory);
            using var svcClient = upgraded.CreateClient(OldCliSecret);
            // The last pushes are sent again, as after an answer lost across the upgrade: duplicates, not applied twice.
            var aliceAgain = await upgraded.Alice.PushAsync(aliceLast);
            var svcAgain = await svcClient.PushAsync(svcLast);
            var aliceNext = await upgraded.Alice.PushAsync(alice.Batch(alice.Increment("user:alice", "n", "c", """{"n":1}""")));

            Assert.Equal(MutationStatus.Duplicate, aliceAgain.Results[0].Status);
            Assert.Equal(MutationStatus.Duplicate, svcAgain.Results[0].Status);
            Assert.Equal(MutationStatus.Applied, aliceNext.Results[0].Status);
            Assert.Equal(3, (await upgraded.Alice.PullAsync("user:alice")).Changes.Single().State.Fields["n"].Value.GetInt32());
            Assert.Equal(1, (await svcClient.PullAsync("svc:1")).Changes.Single().State.Fields["n"].Value.GetInt32());
            var principals = ReadPrincipals(upgraded.DatabasePath);
            Assert.Contains("apikey:alice", principals);
            Assert.Contains("apikey:svc", principals);
            Assert.All(principals, p => Assert.True(p.StartsWith("apikey:", StringComparison.Ordinal) || p.StartsWith("legacy:", StringComparison.Ordinal), p));
            Assert.DoesNotContain(principals, p => p.Contains(OldCliSecret, StringComparison.Ordinal));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void Downgrade(string path, params (string From, string To)[] keys)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            DROP INDEX clients_last_used;
            ALTER TABLE clients DROP COLUMN last_used;
            UPDATE meta SET value = '1' WHERE key = 'schema_version';
            """;
        command.ExecuteNonQuery();
        foreach (var (from, to) in keys)
        {
            using var rename = connection.CreateCommand();
            rename.CommandText = "UPDATE clients SET principal = $to WHERE principal = $from;";
            rename.Parameters.AddWithValue("$from", from);
            rename.Parameters.AddWithValue("$to", to);
            Assert.Equal(1, rename.ExecuteNonQuery());
        }
    }

    [Fact]
    public void Keys_keep_their_namespaces_apart_escape_separators_and_bound_their_length()
    {
        static string Key(params Claim[] claims) =>
            Authentication.PrincipalIdentity.TryGetKey(new ClaimsPrincipal(new ClaimsIdentity(claims, "Bearer")), out var key) ? key : "(none)";

        Assert.Equal("jwt:https://login.example.com/|alice", Key(new Claim("sub", "alice"), new Claim("iss", "https://login.example.com/")));
        Assert.Equal("auth:Bearer|alice", Key(new Claim(ClaimTypes.NameIdentifier, "alice")));
        Assert.Equal("(none)", Key(new Claim("iss", "https://login.example.com/"), new Claim(ClaimTypes.Name, "alice")));
        // An issuer with the separator cannot pass for another issuer's subject.
        Assert.NotEqual(Key(new Claim("sub", "b|c"), new Claim("iss", "a")), Key(new Claim("sub", "c"), new Claim("iss", "a|b")));
        Assert.Equal("jwt:a%007Cb|c", Key(new Claim("sub", "c"), new Claim("iss", "a|b")));
        Assert.Equal("jwt:i|nul%0000", Key(new Claim("sub", "nul\0"), new Claim("iss", "i")));
        var longKey = Key(new Claim("sub", new string('s', 300)), new Claim("iss", "https://login.example.com/"));
        Assert.True(longKey.Length <= Authentication.PrincipalIdentity.MaxKeyLength, longKey);
        Assert.StartsWith("jwt:https://login.example.com/|sss", longKey, StringComparison.Ordinal);
        Assert.NotEqual(longKey, Key(new Claim("sub", new string('s', 301)), new Claim("iss", "https://login.example.com/")));
        // A readable key never holds '#', so it can never equal the bounded form of a long one.
        Assert.DoesNotContain('#', Key(new Claim("sub", longKey), new Claim("iss", "x")));
        var apiKey = new ClaimsPrincipal(new Authentication.ApiKeyIdentity([new Claim("sub", "x"), new Claim("iss", "y")], ConvergeAuthentication.ApiKeyScheme, "svc", "00"));
        Assert.True(Authentication.PrincipalIdentity.TryGetKey(apiKey, out var apiKeyKey));
        Assert.Equal("apikey:svc", apiKeyKey);
    }

    internal static Uri LiveUri(TestServer server, string scope) =>
        new($"ws://{server.Address.Authority}{server.Address.AbsolutePath}{LiveProtocol.Path}?scope={Uri.EscapeDataString(scope)}");

    internal static List<string> ReadPrincipals(string path) => ReadColumn(path, "principal");

    internal static List<string> ReadClients(string path) => ReadColumn(path, "client");

    private static List<string> ReadColumn(string path, string column)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {column} FROM clients ORDER BY {column};";
        using var reader = command.ExecuteReader();
        var values = new List<string>();
        while (reader.Read())
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    private static Task SendAsync(WebSocket socket, Device device, string scope, long request)
    {
        var push = System.Text.Json.JsonSerializer.Serialize(device.Batch(device.Put(scope, "n", "n" + request, 0, """{"a":1}""")), ProtocolJson.PushRequest);
        var text = $$"""{"type":"push","request":{{request}},"push":{{push}}}""";
        return socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
    }

    private static Task<JsonNode?> ReceiveAsync(WebSocket socket) => LiveSocket.ReceiveAsync(socket);
}

/// <summary>JWTs signed with a test key, from one of two issuers the test server accepts.</summary>
internal static class Jwt
{
    public const string Issuer = "https://login.example.com/";
    public const string OtherIssuer = "https://other.example.net/";

    public static readonly SymmetricSecurityKey Key = new(Encoding.UTF8.GetBytes("a test signing key that is long enough for HS256"));

    /// <summary>A fake clock that starts at the real time, so tokens agree with it whichever clock validates them.</summary>
    public static FakeTimeProvider Clock() => new(TimeProvider.System.GetUtcNow());

    public static void Add(WebApplicationBuilder builder, Action<JwtBearerOptions>? configure = null) =>
        builder.Services.AddAuthentication().AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuers = [Issuer, OtherIssuer],
                ValidateAudience = false,
                IssuerSigningKey = Key,
            };
            configure?.Invoke(o);
        });

    public static string Create(TimeProvider time, string? sub, string issuer = Issuer, DateTimeOffset? expires = null, params string[] scopes)
    {
        var claims = new List<Claim>();
        if (sub is not null)
        {
            claims.Add(new Claim("sub", sub));
        }

        claims.AddRange(scopes.Select(s => new Claim("converge:scope", s)));
        var exp = expires ?? time.GetUtcNow().AddHours(1);
        static DateTimeOffset Earlier(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Subject = new ClaimsIdentity(claims),
            IssuedAt = Earlier(time.GetUtcNow(), exp.AddHours(-2)).UtcDateTime,
            NotBefore = Earlier(time.GetUtcNow(), exp.AddHours(-2)).UtcDateTime,
            Expires = exp.UtcDateTime,
            SigningCredentials = new SigningCredentials(Key, SecurityAlgorithms.HmacSha256),
        });
    }
}

/// <summary>A real logger provider that keeps every formatted message and every structured value it is given.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(_lines);

    public void Dispose()
    {
    }

    private sealed class Logger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" ", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            lines.Enqueue($"{eventId.Id} {formatter(state, exception)} {values} {exception}");
        }
    }
}
