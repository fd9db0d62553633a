using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Converge.Server.Tests;

public class SecurityTests
{
    [Fact]
    public async Task A_push_touching_a_foreign_scope_is_refused_whole()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        var before = await server.Bob.SnapshotAsync("user:bob");

        using var response = await server.Mallory.PostAsync("v1/push", Api.Json(device.Batch(
            device.Put("user:mallory", "notes", "mine", 0, """{"a":1}"""),
            device.Put("user:bob", "notes", "his", 0, """{"a":1}"""))));

        await Api.AssertProblemAsync(response, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
        Assert.Equal(before, await server.Bob.SnapshotAsync("user:bob"));
        Assert.Empty((await server.Mallory.PullAsync("user:mallory")).Changes);
        // Nothing was recorded for the client either: the same ids apply later.
        var own = await server.Mallory.PushAsync(device.Batch(device.Put("user:mallory", "notes", "mine", 0, """{"a":1}""") with { Id = 1 }));
        Assert.Equal(MutationStatus.Applied, own.Results[0].Status);
    }

    [Fact]
    public async Task Pull_and_conflicts_of_a_foreign_scope_are_forbidden()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        await server.Bob.PushAsync(device.Batch(device.Put("user:bob", "notes", "n", 0, """{"secret":"s"}""")));

        using var pull = await server.Alice.GetAsync(Api.PullUri("user:bob"));
        using var conflicts = await server.Alice.GetAsync("v1/conflicts?scope=user:bob");

        var body = await Api.AssertProblemAsync(pull, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
        Assert.DoesNotContain("secret", body, StringComparison.Ordinal);
        await Api.AssertProblemAsync(conflicts, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
    }

    [Fact]
    public async Task Resolving_a_conflict_of_a_foreign_scope_answers_exactly_like_an_unknown_id()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, o => o.Collection("notes", new CollectionRules { Policy = ConflictPolicy.Manual }));
        var a = new Device(time);
        var b = new Device(time);
        await server.Bob.PushAsync(a.Batch(a.Put("user:bob", "notes", "n", 0, """{"t":"0"}""")));
        await server.Bob.PushAsync(a.Batch(a.Patch("user:bob", "notes", "n", 1, """{"t":"a"}""")));
        var conflict = await server.Bob.PushAsync(b.Batch(b.Patch("user:bob", "notes", "n", 1, """{"t":"b"}""")));
        var id = conflict.Results[0].ConflictId!;
        var before = await server.Bob.SnapshotAsync("user:bob");

        using var foreign = await server.Mallory.ResolveRawAsync(id, new ResolveConflictRequest { Choice = "client" });
        using var unknown = await server.Mallory.ResolveRawAsync(Guid.CreateVersion7().ToString(), new ResolveConflictRequest { Choice = "client" });

        var foreignBody = await Api.AssertProblemAsync(foreign, HttpStatusCode.NotFound, ProtocolErrorCodes.NotFound);
        var unknownBody = await Api.AssertProblemAsync(unknown, HttpStatusCode.NotFound, ProtocolErrorCodes.NotFound);
        Assert.Equal(unknownBody, foreignBody);
        Assert.Equal(before, await server.Bob.SnapshotAsync("user:bob"));
        Assert.Single(await server.Bob.ConflictsAsync("user:bob"));
    }

    [Fact]
    public async Task Requests_without_valid_credentials_get_401_unauthenticated_and_health_is_anonymous()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);
        using var wrongKey = server.CreateClient("not-a-key");
        using var basic = server.CreateClient(null);
        basic.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(TestServer.AliceKey)));

        foreach (var client in new[] { server.Anonymous, wrongKey, basic })
        {
            using var push = await client.PostAsync("v1/push", Api.Json(device.Batch(device.Put("user:alice", "n", "n", 0, """{"a":1}"""))));
            using var pull = await client.GetAsync(Api.PullUri("user:alice"));
            using var conflicts = await client.GetAsync("v1/conflicts?scope=user:alice");
            using var resolve = await client.ResolveRawAsync("x", new ResolveConflictRequest { Choice = "server" });
            foreach (var response in new[] { push, pull, conflicts, resolve })
            {
                await Api.AssertProblemAsync(response, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
                Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
            }
        }

        Assert.Empty((await server.Alice.PullAsync("user:alice")).Changes);
        using var health = await server.Anonymous.GetAsync("v1/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var body = System.Text.Json.JsonSerializer.Deserialize(await health.Content.ReadAsByteArrayAsync(), ProtocolJson.HealthResponse)!;
        Assert.Equal("ok", body.Status);
        Assert.Equal(ProtocolLimits.Version, body.Protocol);
        Assert.Equal(Times.Start.ToUnixTimeMilliseconds(), body.Clock.Physical);
    }

    [Fact]
    public async Task A_wildcard_scope_claim_grants_every_scope_with_its_prefix_only()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var device = new Device(time);

        var allowed = await server.Alice.PushAsync(device.Batch(device.Put("team:42", "n", "n", 0, """{"a":1}""")));
        using var prefixOnly = await server.Alice.GetAsync(Api.PullUri("teams:42"));

        Assert.Equal(MutationStatus.Applied, allowed.Results[0].Status);
        await Api.AssertProblemAsync(prefixOnly, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
        Assert.Single((await server.Bob.PullAsync("team:42")).Changes);
    }

    [Fact]
    public async Task Another_principal_reusing_a_client_id_cannot_spend_its_mutation_ids()
    {
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time);
        var victim = new Device(time);
        var attacker = new Device(time, victim.Node);
        // The attacker pushes with the victim's client id and a huge mutation id.
        await server.Mallory.PushAsync(new PushRequest
        {
            ClientId = victim.Id,
            Clock = attacker.Clock.Now(),
            Mutations = [attacker.Put("user:mallory", "n", "n", 0, """{"a":1}""") with { Id = 1_000_000 }],
        });

        var response = await server.Alice.PushAsync(victim.Batch(victim.Put("user:alice", "n", "n", 0, """{"a":1}""")));

        Assert.Equal(MutationStatus.Applied, response.Results[0].Status);
    }

    [Fact]
    public async Task A_jwt_from_an_app_configured_bearer_scheme_is_accepted_with_its_scope_claims()
    {
        var time = Times.NewFake();
        var key = new SymmetricSecurityKey(Encoding.UTF8.GetBytes("a test signing key that is long enough for HS256"));
        await using var server = await TestServer.StartAsync(time, build: builder =>
            builder.Services.AddAuthentication().AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidateIssuer = false,
                    ValidateAudience = false,
                    ValidateLifetime = false,
                    IssuerSigningKey = key,
                };
            }));
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity([new Claim("sub", "carol"), new Claim("converge:scope", "user:carol"), new Claim("converge:scope", "org:*")]),
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.HmacSha256),
        });
        using var carol = server.CreateClient(token);
        using var forged = server.CreateClient(token[..^4] + "AAAA");
        var device = new Device(time);

        var push = await carol.PushAsync(device.Batch(device.Put("org:1", "n", "n", 0, """{"a":1}""")));
        using var foreign = await carol.GetAsync(Api.PullUri("user:alice"));
        using var bad = await forged.GetAsync(Api.PullUri("user:carol"));

        Assert.Equal(MutationStatus.Applied, push.Results[0].Status);
        Assert.Single((await carol.PullAsync("org:1")).Changes);
        await Api.AssertProblemAsync(foreign, HttpStatusCode.Forbidden, ProtocolErrorCodes.ScopeForbidden);
        await Api.AssertProblemAsync(bad, HttpStatusCode.Unauthorized, ProtocolErrorCodes.Unauthenticated);
        // API keys still work next to JWTs.
        Assert.Empty((await server.Alice.PullAsync("user:alice")).Changes);
        var policy = await server.Services.GetRequiredService<Microsoft.AspNetCore.Authorization.IAuthorizationPolicyProvider>().GetPolicyAsync(ConvergeAuthentication.PolicyName);
        Assert.Equal([JwtBearerDefaults.AuthenticationScheme, ConvergeAuthentication.ApiKeyScheme], policy!.AuthenticationSchemes);
    }
}
