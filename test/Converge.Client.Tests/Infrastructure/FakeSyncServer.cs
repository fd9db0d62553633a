using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.Client.Tests.Infrastructure;

/// <summary>
/// A tiny sync server on Kestrel (127.0.0.1, port 0): two endpoints that record what they receive and answer what the
/// test says; by default every mutation is applied and every pull is empty.
/// </summary>
public sealed class FakeSyncServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _inFlight;

    private FakeSyncServer(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    public HybridTimestamp Clock { get; set; } = new(1_700_000_000_000, 0, 0x5e);

    public ConcurrentQueue<PushRequest> Pushes { get; } = new();

    public ConcurrentQueue<(string Scope, long After, int Limit)> Pulls { get; } = new();

    public ConcurrentQueue<string?> Authorizations { get; } = new();

    /// <summary>Answers a push; by default every mutation is applied.</summary>
    public Func<PushRequest, Task<IResult>>? OnPush { get; set; }

    /// <summary>Answers a pull; by default an empty last page at the request's cursor.</summary>
    public Func<string, long, int, Task<IResult>>? OnPull { get; set; }

    /// <summary>Gets the most requests that were in progress at once.</summary>
    public int MaxConcurrent { get; private set; }

    public static async Task<FakeSyncServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new FakeSyncServer(app);
        app.MapPost("/converge/v1/push", (RequestDelegate)server.PushAsync);
        app.MapGet("/converge/v1/pull", (RequestDelegate)server.PullAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        server.Url = new Uri(address);
        return server;
    }

    public static IResult Json(PushResponse response) => Results.Json(response, ProtocolJson.PushResponse);

    public static IResult Json(PullResponse response) => Results.Json(response, ProtocolJson.PullResponse);

    public static IResult Problem(int status, string code, string? scope = null)
    {
        var body = new Dictionary<string, object> { ["status"] = status, ["code"] = code, ["title"] = "refused" };
        if (scope is not null)
        {
            body["scope"] = scope;
        }

        return Results.Json(body, statusCode: status, contentType: "application/problem+json");
    }

    public PushResponse Applied(PushRequest request) => new()
    {
        Clock = Clock,
        Results = request.Mutations.Select((m, i) => new MutationResult { Id = m.Id, Status = MutationStatus.Applied, Revision = i + 1 }).ToList(),
    };

    public PullResponse Page(string scope, long cursor, bool hasMore = false, IReadOnlyList<DocumentChange>? changes = null, IReadOnlyList<ConflictRecord>? conflicts = null, bool reset = false, string? epoch = null) => new()
    {
        Scope = scope,
        Cursor = cursor,
        HasMore = hasMore,
        Reset = reset,
        Clock = Clock,
        Epoch = epoch,
        Changes = changes ?? [],
        Conflicts = conflicts,
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task PushAsync(HttpContext context)
    {
        Enter();
        try
        {
            Authorizations.Enqueue(context.Request.Headers.Authorization.FirstOrDefault());
            var request = await JsonSerializer.DeserializeAsync(context.Request.Body, ProtocolJson.PushRequest);
            Pushes.Enqueue(request!);
            var result = OnPush is null ? Json(Applied(request!)) : await OnPush(request!);
            await result.ExecuteAsync(context);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private async Task PullAsync(HttpContext context)
    {
        Enter();
        try
        {
            Authorizations.Enqueue(context.Request.Headers.Authorization.FirstOrDefault());
            var scope = context.Request.Query["scope"].ToString();
            var after = long.Parse(context.Request.Query["after"].ToString(), CultureInfo.InvariantCulture);
            var limit = int.Parse(context.Request.Query["limit"].ToString(), CultureInfo.InvariantCulture);
            Pulls.Enqueue((scope, after, limit));
            var result = OnPull is null ? Json(Page(scope, after)) : await OnPull(scope, after, limit);
            await result.ExecuteAsync(context);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private void Enter()
    {
        var now = Interlocked.Increment(ref _inFlight);
        lock (Pushes)
        {
            MaxConcurrent = Math.Max(MaxConcurrent, now);
        }
    }
}
