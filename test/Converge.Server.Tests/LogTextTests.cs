using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Claims;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Converge.Server.Tests;

/// <summary>What a caller sends never reaches a log raw: no line breaks, terminal escapes, bidi or invisible characters, no endless text.</summary>
public class LogTextTests
{
    /// <summary>A principal name that forges a log line, colours a terminal, flips text and goes on and on.</summary>
    private static readonly string Hostile = "eve\r\n2025-06-01 12:00:00 info: Converge.Server[2000] forged\u001b[31m\u001b]0;title\u0007\u202Eevil\u2028\u0085\u200B" + new string('x', 400);

    [Fact]
    public async Task A_hostile_principal_name_from_a_token_is_sanitized_in_every_log_event()
    {
        var logs = new ListLoggerProvider();
        var key = new SymmetricSecurityKey(Encoding.UTF8.GetBytes("a test signing key that is long enough for HS256"));
        var time = Times.NewFake();
        await using var server = await TestServer.StartAsync(time, build: builder =>
        {
            builder.Logging.AddProvider(logs).SetMinimumLevel(LogLevel.Trace);
            builder.Services.AddAuthentication().AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidateIssuer = false,
                    ValidateAudience = false,
                    ValidateLifetime = false,
                    IssuerSigningKey = key,
                    NameClaimType = "name",
                };
            });
        });
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity([new Claim("sub", Hostile), new Claim("name", Hostile), new Claim("converge:scope", "user:eve")]),
            // On the server's (fake) clock, so the live connection's expiry is an hour away.
            IssuedAt = Times.Start.UtcDateTime,
            NotBefore = Times.Start.UtcDateTime,
            Expires = Times.Start.UtcDateTime.AddHours(1),
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.HmacSha256),
        });
        using var eve = server.CreateClient(token);

        using var foreignPull = await eve.GetAsync(Api.PullUri("user:alice"));
        using var badPath = await eve.PostAsync("v1/conflicts/%1B%5B31m%0D%0Aforged%E2%80%AE/resolve", Api.Raw("{"));
        var foreignLive = await LiveSocket.TryConnectAsync(server, token, "scope=user%3Aalice");
        using (var live = await LiveSocket.ConnectAsync(server, token, "user:eve"))
        {
            await live.Socket.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        }

        await server.StopAsync();

        Assert.Equal(HttpStatusCode.Forbidden, foreignPull.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badPath.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, foreignLive);
        var entries = logs.Entries.Where(e => e.Category.StartsWith("Converge", StringComparison.Ordinal)).ToList();
        // The events that carry the principal: refused scopes (HTTP and live), live connections opened and closed.
        Assert.Equal(2, entries.Count(e => e.EventId == 2007));
        Assert.Contains(entries, e => e.EventId == 2014);
        Assert.Contains(entries, e => e.EventId == 2015);
        Assert.Contains(entries, e => e.EventId == 2006);
        foreach (var entry in entries)
        {
            foreach (var text in entry.Values.Append(entry.Message))
            {
                Assert.False(HasUnsafe(text), $"Event {entry.EventId} logs unsafe text: {Escape(text)}");
            }

            if (entry.Values.FirstOrDefault(v => v.StartsWith("eve", StringComparison.Ordinal)) is { } principal)
            {
                Assert.True(principal.Length <= 130, $"Event {entry.EventId} logs {principal.Length} characters of a principal name.");
                Assert.EndsWith("…", principal, StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [InlineData("alice", "alice")]
    [InlineData("team:42", "team:42")]
    [InlineData("Zoë 🎉", "Zoë 🎉")]
    [InlineData("a\r\nb", "a\\u000D\\u000Ab")]
    [InlineData("a\u001b[31m", "a\\u001B[31m")]
    [InlineData("a\u202Eb\u200Bc\u2028", "a\\u202Eb\\u200Bc\\u2028")]
    [InlineData(null, "")]
    public void Sanitize_escapes_what_could_forge_or_hide_text(string? input, string expected)
    {
        var sanitized = LogText.Sanitize(input);

        Assert.Equal(expected, sanitized);
    }

    [Fact]
    public void Sanitize_escapes_a_lone_surrogate_and_keeps_a_pair()
    {
        Assert.Equal("a\\uD800b\\uDC00🎉", LogText.Sanitize("a\uD800b\uDC00🎉"));
    }

    [Fact]
    public void Sanitize_caps_the_length_without_splitting_a_surrogate_pair()
    {
        var sanitized = LogText.Sanitize(new string('x', LogText.MaxLength - 2) + "🎉🎉🎉");

        Assert.Equal(new string('x', LogText.MaxLength - 2) + "…", sanitized);
        Assert.Equal(LogText.MaxLength, LogText.Sanitize(new string('y', 500)).Length);
        Assert.Equal(new string('z', LogText.MaxLength), LogText.Sanitize(new string('z', LogText.MaxLength)));
    }

    private static bool HasUnsafe(string text) =>
        text.Any(c => char.GetUnicodeCategory(c) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate);

    private static string Escape(string text) =>
        string.Concat(text.Select(c => c < ' ' || c > '~' ? $"\\u{(int)c:X4}" : c.ToString()));

    private sealed record Entry(string Category, int EventId, string Message, IReadOnlyList<string> Values);

    private sealed class ListLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<Entry> _entries = new();

        public IEnumerable<Entry> Entries => _entries;

        public ILogger CreateLogger(string categoryName) => new ListLogger(categoryName, _entries);

        public void Dispose()
        {
        }

        private sealed class ListLogger(string category, ConcurrentQueue<Entry> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                    ? pairs.Where(p => p.Key != "{OriginalFormat}").Select(p => Convert.ToString(p.Value, CultureInfo.InvariantCulture) ?? "").ToList()
                    : [];
                entries.Enqueue(new Entry(category, eventId.Id, formatter(state, exception), values));
            }
        }
    }
}
