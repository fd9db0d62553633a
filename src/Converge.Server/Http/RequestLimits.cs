using System.Security.Claims;
using System.Threading.RateLimiting;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Http;

/// <summary>
/// What one principal may hold at once: bytes of bodies being read (per connection, per principal, in all), HTTP
/// requests open, live connections open; and how long a body may take to arrive.
/// </summary>
/// <remarks>
/// The counts are <see cref="ConcurrencyLimiter"/>s partitioned by principal, without a queue: past the limit the
/// answer is 429 at once, so a hostile caller never makes the server hold anything for it. They are enforced by the
/// endpoints themselves rather than the rate-limiting middleware, which does nothing unless the app calls
/// <c>UseRateLimiter</c> in the right place; an app adds its own policies on the group <c>MapConverge</c> returns.
/// </remarks>
internal sealed class RequestLimits : IDisposable
{
    /// <summary>The seconds a refused caller is told to wait (<c>Retry-After</c>): a budget frees as bodies finish or time out.</summary>
    public const int RetryAfterSeconds = 1;

    private readonly PartitionedRateLimiter<string> _requests;
    private readonly PartitionedRateLimiter<string> _live;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _logger;

    public RequestLimits(ConvergeServerOptions options, TimeProvider time, ServerMetrics metrics, ILogger logger)
    {
        Options = options;
        Time = time;
        _metrics = metrics;
        _logger = logger;
        Bytes = new BytesInFlight(options.MaxBytesInFlightPerConnection, options.MaxBytesInFlightPerPrincipal, options.MaxBytesInFlight);
        _requests = PerPrincipal(options.MaxConcurrentRequestsPerPrincipal);
        _live = PerPrincipal(options.MaxLiveConnectionsPerPrincipal);
        metrics.ObserveRequestBytesInFlight(() => Bytes.Total);
    }

    public ConvergeServerOptions Options { get; }

    public TimeProvider Time { get; }

    public BytesInFlight Bytes { get; }

    /// <summary>The principal's stable key; principals without one share a key here, and every endpoint refuses them.</summary>
    private static string KeyOf(ClaimsPrincipal user) => Authentication.PrincipalIdentity.TryGetKey(user, out var key) ? key : "(unidentified)";

    /// <summary>Runs an HTTP endpoint within the principal's count of open requests, or answers 429.</summary>
    public async Task RunAsync(HttpContext context, Func<HttpContext, Task> endpoint)
    {
        using var lease = _requests.AttemptAcquire(KeyOf(context.User));
        if (!lease.IsAcquired)
        {
            await RefuseAsync(context, "requests", $"The caller has {Options.MaxConcurrentRequestsPerPrincipal} requests open, the most the server allows at once; retry later.").ConfigureAwait(false);
            return;
        }

        await endpoint(context).ConfigureAwait(false);
    }

    /// <summary>Takes one of the principal's live connections, for as long as the lease is held; not acquired past the limit.</summary>
    public RateLimitLease EnterLive(ClaimsPrincipal user) => _live.AttemptAcquire(KeyOf(user));

    /// <summary>Opens the reservation of a connection's bodies, on behalf of its principal.</summary>
    public BodyReservation Reserve(HttpContext context) =>
        new(Bytes, KeyOf(context.User), context.Connection.Id);

    /// <summary>Counts and logs a refusal by a limit: bytes_in_flight, requests or live_connections.</summary>
    public void Refused(HttpContext context, string limit)
    {
        _metrics.RecordLimited(limit);
        Log.RequestLimited(_logger, LogText.Sanitize(context.Request.Path), LogText.Sanitize(KeyOf(context.User)), limit);
    }

    /// <summary>Counts and logs a body that did not arrive in time, and returns its 408 problem.</summary>
    public ProtocolError TimedOut(HttpContext context)
    {
        _metrics.RecordLimited("body_timeout");
        Log.RequestBodyTimedOut(_logger, LogText.Sanitize(context.Request.Path), LogText.Sanitize(KeyOf(context.User)), Options.RequestBodyTimeout);
        return new ProtocolError(ProtocolErrorCodes.RequestTimeout, $"The body did not arrive whole within {Options.RequestBodyTimeout.TotalSeconds:0.###} seconds.");
    }

    /// <summary>Counts and logs a live message that did not arrive in time.</summary>
    public void LiveTimedOut(string principal)
    {
        _metrics.RecordLimited("body_timeout");
        Log.LiveMessageTimedOut(_logger, LogText.Sanitize(principal), Options.RequestBodyTimeout);
    }

    /// <summary>Answers 429 <c>too_many_requests</c>, with <c>Retry-After</c>, and counts it.</summary>
    public Task RefuseAsync(HttpContext context, string limit, string detail)
    {
        Refused(context, limit);
        return Problem.WriteAsync(context, StatusCodes.Status429TooManyRequests, ProtocolErrorCodes.TooManyRequests, detail);
    }

    public void Dispose()
    {
        _requests.Dispose();
        _live.Dispose();
    }

    private static PartitionedRateLimiter<string> PerPrincipal(int permits) =>
        PartitionedRateLimiter.Create<string, string>(principal => RateLimitPartition.GetConcurrencyLimiter(
            principal,
            _ => new ConcurrencyLimiterOptions { PermitLimit = permits, QueueLimit = 0 }));
}

/// <summary>The bytes of bodies being read, per connection, per principal and in all; a reservation past a bound is refused.</summary>
/// <remarks>One lock: a body reserves a few times (its first buffer and each doubling), so it is never contended for long.</remarks>
internal sealed class BytesInFlight(long perConnection, long perPrincipal, long total)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _principals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _connections = new(StringComparer.Ordinal);
    private long _total;

    /// <summary>Gets the bytes reserved now, over all connections.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Reserves bytes, or says which bound they would pass.</summary>
    internal ProtocolError? TryAdd(string principal, string connection, long bytes)
    {
        lock (_lock)
        {
            var ofConnection = _connections.GetValueOrDefault(connection);
            var ofPrincipal = _principals.GetValueOrDefault(principal);
            if (ofConnection + bytes > perConnection)
            {
                return TooMany($"The connection has {ofConnection} bytes of requests being read; at most {perConnection} are allowed at once.");
            }

            if (ofPrincipal + bytes > perPrincipal)
            {
                return TooMany($"The caller has {ofPrincipal} bytes of requests being read; at most {perPrincipal} are allowed at once.");
            }

            if (_total + bytes > total)
            {
                return TooMany("The server is reading as many bytes of requests as it allows at once.");
            }

            _connections[connection] = ofConnection + bytes;
            _principals[principal] = ofPrincipal + bytes;
            Interlocked.Add(ref _total, bytes);
            return null;
        }
    }

    internal void Remove(string principal, string connection, long bytes)
    {
        lock (_lock)
        {
            Subtract(_connections, connection, bytes);
            Subtract(_principals, principal, bytes);
            Interlocked.Add(ref _total, -bytes);
        }
    }

    private static void Subtract(Dictionary<string, long> held, string key, long bytes)
    {
        var left = held.GetValueOrDefault(key) - bytes;
        if (left <= 0)
        {
            held.Remove(key);
        }
        else
        {
            held[key] = left;
        }
    }

    private static ProtocolError TooMany(string why) => new(ProtocolErrorCodes.TooManyRequests, why + " Retry later.");
}

/// <summary>The bytes one connection's body or message holds; grows with its buffer, and is given back whole.</summary>
/// <remarks>Safe to release from another thread (a live message's timeout) while the reader grows it.</remarks>
internal sealed class BodyReservation(BytesInFlight bytes, string principal, string connection) : IDisposable
{
    private readonly Lock _lock = new();
    private long _held;

    /// <summary>Gets the bytes held.</summary>
    public long Held
    {
        get
        {
            lock (_lock)
            {
                return _held;
            }
        }
    }

    /// <summary>Reserves more; on refusal holds what it held and returns the 429 problem.</summary>
    public ProtocolError? TryGrow(long more)
    {
        lock (_lock)
        {
            if (bytes.TryAdd(principal, connection, more) is { } refused)
            {
                return refused;
            }

            _held += more;
            return null;
        }
    }

    /// <summary>Gives back everything held; may be called again.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (_held > 0)
            {
                bytes.Remove(principal, connection, _held);
                _held = 0;
            }
        }
    }

    public void Dispose() => Release();
}
