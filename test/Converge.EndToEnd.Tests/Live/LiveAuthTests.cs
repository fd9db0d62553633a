using System.Security.Claims;
using System.Text;
using Converge.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Converge.EndToEnd.Tests.Live;

/// <summary>A live connection lives no longer than its credentials.</summary>
public sealed class LiveAuthTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly SymmetricSecurityKey Key = new(Encoding.UTF8.GetBytes("a development signing key, long enough for HS256"));

    [Fact]
    public async Task A_connection_is_closed_when_its_token_expires_and_the_client_comes_back_with_a_new_one()
    {
        await using var server = await SyncServer.StartAsync(host: builder => builder.Services.AddAuthentication().AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = "tests",
                ValidAudience = "converge",
                IssuerSigningKey = Key,
                ClockSkew = TimeSpan.Zero,
            };
        }));
        var issued = 0;
        var a = await server.OpenClientAsync("a", configure: o =>
        {
            o.LiveReconnectDelay = TimeSpan.FromMilliseconds(20);
            o.LiveMaxReconnectDelay = TimeSpan.FromMilliseconds(200);
            o.AccessTokenProvider = _ =>
            {
                // Each token lives two seconds; the first is the one the connection opens with.
                Interlocked.Increment(ref issued);
                return ValueTask.FromResult<string?>(Token(TimeSpan.FromSeconds(2)));
            };
        });
        var statuses = new List<(LiveStatus Status, string? Error)>();
        a.Live.StatusChanged += (_, e) =>
        {
            lock (statuses)
            {
                statuses.Add((e.Status, e.Error?.Message));
            }
        };

        a.Live.Start();
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);
        var dropped = a.Live.WaitForStatusAsync(LiveStatus.Offline);
        await dropped.WaitAsync(Patience);
        await a.Live.WaitForStatusAsync(LiveStatus.Live).WaitAsync(Patience);

        lock (statuses)
        {
            Assert.Contains(statuses, s => s.Status == LiveStatus.Offline && s.Error!.Contains("token expired", StringComparison.Ordinal));
        }

        Assert.True(issued >= 2, $"{issued} tokens were asked for");
    }

    private static string Token(TimeSpan lifetime) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "tests",
        Audience = "converge",
        Subject = new ClaimsIdentity([new Claim("sub", "alice"), new Claim("converge:scope", "s1")]),
        NotBefore = DateTime.UtcNow.AddSeconds(-5),
        Expires = DateTime.UtcNow.Add(lifetime),
        SigningCredentials = new SigningCredentials(Key, SecurityAlgorithms.HmacSha256),
    });
}
