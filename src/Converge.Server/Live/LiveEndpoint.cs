using System.Net.WebSockets;
using System.Text.Json;
using Converge.Protocol.Messages;
using Converge.Server.Authentication;
using Converge.Server.Engine;
using Converge.Server.Hosting;
using Converge.Server.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Live;

/// <summary>
/// <c>GET {base}/v1/live</c>: the live channel. Authenticated and authorized like the HTTP API (every scope named must
/// be readable, or the upgrade is refused with 403 before any message); then it streams each commit of those scopes to
/// the client, and takes pushes (answered in order) over the same socket.
/// </summary>
internal sealed class LiveEndpoint(
    ConvergeEndpoints http,
    SyncEngine engine,
    IScopeAuthorizer authorizer,
    LiveHub hub,
    ConvergeServerOptions options,
    RequestLimits limits,
    ServerMetrics metrics,
    ILogger logger,
    TimeProvider time,
    IHostApplicationLifetime? lifetime)
{
    private static readonly byte[] PushType = System.Text.Encoding.UTF8.GetBytes(LiveProtocol.Push);

    /// <summary>The longest delay a timer takes.</summary>
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(int.MaxValue - 1);

    /// <summary>How long a closing connection may take to say goodbye before it is cut.</summary>
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Problem.WriteAsync(context, StatusCodes.Status426UpgradeRequired, ProtocolErrorCodes.InvalidMessage, "The live channel is a WebSocket: send GET with 'Upgrade: websocket'.").ConfigureAwait(false);
            return;
        }

        // Before anything else, and before the upgrade: a principal without a stable identity gets no channel.
        if (!PrincipalIdentity.TryGetKey(context.User, out var key))
        {
            await http.RefuseUnidentifiedAsync(context).ConfigureAwait(false);
            return;
        }

        var scopes = context.Request.Query[LiveProtocol.ScopeParameter];
        if (scopes.Count == 0 || scopes.Count > options.MaxLiveScopes)
        {
            await RefuseAsync(context, $"Name 1 to {options.MaxLiveScopes} scopes to follow, each as a 'scope' query parameter.").ConfigureAwait(false);
            return;
        }

        var followed = new List<string>(scopes.Count);
        foreach (var scope in scopes)
        {
            if (options.Limits.CheckScope(scope) is { } invalid)
            {
                await RefuseAsync(context, "A 'scope' is invalid. " + invalid.Message).ConfigureAwait(false);
                return;
            }

            if (followed.Contains(scope!, StringComparer.Ordinal))
            {
                await RefuseAsync(context, "Each 'scope' must be given once.").ConfigureAwait(false);
                return;
            }

            followed.Add(scope!);
        }

        foreach (var scope in followed)
        {
            if (!await authorizer.IsAllowedAsync(context.User, scope, ScopeAccess.Read, context.RequestAborted).ConfigureAwait(false))
            {
                Log.ScopeForbidden(logger, LogText.Sanitize(context.User.Identity?.Name ?? "(unnamed)"), scope);
                await Problem.WriteAsync(context, StatusCodes.Status403Forbidden, ProtocolErrorCodes.ScopeForbidden, $"The caller may not use scope '{scope}'.", scope).ConfigureAwait(false);
                return;
            }
        }

        // Counted before the upgrade, so a principal's connections past the limit never become sockets.
        using var slot = limits.EnterLive(context.User);
        if (!slot.IsAcquired)
        {
            await limits.RefuseAsync(context, "live_connections", $"The caller has {options.MaxLiveConnectionsPerPrincipal} live connections open, the most the server allows at once; retry later.").ConfigureAwait(false);
            return;
        }

        await engine.EnsureInitializedAsync(context.RequestAborted).ConfigureAwait(false);
        var end = await TokenLifetime.EndOfAsync(context).ConfigureAwait(false);
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            KeepAliveInterval = options.LiveKeepAliveInterval,
            KeepAliveTimeout = options.LiveKeepAliveTimeout,
        }).ConfigureAwait(false);
        var principal = context.User.Identity?.Name ?? key;
        var connection = new LiveConnection(socket, followed, principal, options.LiveSendQueueBytes, metrics, logger);

        // "ready" goes first, and the connection follows its scopes before it is sent: every commit after the client
        // reads it reaches the client, so the pull the client starts then misses nothing.
        connection.Answer(LiveFrames.Ready(engine.Clock.Now(), followed));
        hub.Add(connection);
        metrics.LiveConnections.Add(1);
        Log.LiveConnected(logger, LogText.Sanitize(principal), string.Join(", ", followed), hub.ConnectionCount);

        using var abort = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var close = (Status: WebSocketCloseStatus.NormalClosure, Reason: "");
        void End(WebSocketCloseStatus status, string reason)
        {
            close = (status, reason);
            connection.Complete();
            abort.CancelAfter(CloseGrace);
        }

        // The server stops: the socket is closed as "going away", and clients reconnect to it or another node.
        var stopping = lifetime?.ApplicationStopping ?? CancellationToken.None;
        using var onStopping = stopping.Register(() => End(WebSocketCloseStatus.EndpointUnavailable, "The server is stopping."));

        // A connection lives no longer than the credentials it was opened with (a JWT's expiry, plus the clock skew the
        // HTTP API grants it too): the client connects again with fresh ones, and a revoked principal stops receiving changes.
        // A timer waits at most about 24.8 days (int.MaxValue milliseconds): a token valid for longer is not cut by it.
        using var expiry = end is { } expires && Max(expires - time.GetUtcNow(), TimeSpan.Zero) is var left && left <= MaxTimerDelay
            ? new CancellationTokenSource(left, time)
            : null;
        using var onExpiry = expiry?.Token.Register(() => End(WebSocketCloseStatus.PolicyViolation, "The access token expired; connect again with a new one."));

        // Each message is read within the bytes in flight of the connection and the principal, and within the body timeout.
        using var reservation = limits.Reserve(context);
        var reader = new LiveMessageReader(socket, reservation, (int)Math.Min(options.MaxRequestBytes, int.MaxValue - 1), options.RequestBodyTimeout, time);
        bool Refused(long? request, ProtocolError error)
        {
            limits.Refused(context, "bytes_in_flight");
            if (request is null)
            {
                End(WebSocketCloseStatus.PolicyViolation, "A message over the bytes in flight the server allows, which names no request to answer; retry later.");
                return false;
            }

            if (!connection.Answer(Error(request, error)))
            {
                close = (WebSocketCloseStatus.PolicyViolation, "The client does not read the answers to its requests.");
                return false;
            }

            return true;
        }

        void TimedOut()
        {
            limits.LiveTimedOut(principal);
            End(WebSocketCloseStatus.PolicyViolation, $"A message did not arrive whole within {options.RequestBodyTimeout.TotalSeconds:0.###} seconds.");
        }

        var sending = SendAsync(socket, connection, () => close, abort);
        Exception? failure = null;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                var received = await reader.ReceiveAsync(Refused, TimedOut, abort.Token).ConfigureAwait(false);
                if (received == LiveReceive.TooLarge)
                {
                    close = (WebSocketCloseStatus.MessageTooBig, $"A message may be at most {options.MaxRequestBytes} bytes.");
                    break;
                }

                if (received == LiveReceive.Ended)
                {
                    break;
                }

                if (received == LiveReceive.Refused)
                {
                    continue;
                }

                try
                {
                    var (answer, keepOpen) = await AnswerAsync(context, reader.Message, abort.Token).ConfigureAwait(false);
                    if (!connection.Answer(answer))
                    {
                        if (!stopping.IsCancellationRequested)
                        {
                            close = (WebSocketCloseStatus.PolicyViolation, "The client does not read the answers to its requests.");
                        }

                        break;
                    }

                    if (!keepOpen)
                    {
                        break;
                    }
                }
                finally
                {
                    reader.ReleaseMessage();
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            failure = e;
        }
        finally
        {
            reader.ReleaseMessage();
            hub.Remove(connection);
            metrics.LiveConnections.Add(-1);
            connection.Complete();
            abort.CancelAfter(CloseGrace);
            await sending.ConfigureAwait(false);
            Log.LiveDisconnected(logger, failure, LogText.Sanitize(principal), close.Status, hub.ConnectionCount);
        }
    }

    /// <summary>Sends until the connection's queue ends, then closes the socket's side with the reason set by then.</summary>
    private static async Task SendAsync(WebSocket socket, LiveConnection connection, Func<(WebSocketCloseStatus Status, string Reason)> close, CancellationTokenSource abort)
    {
        try
        {
            await connection.SendLoopAsync(abort.Token).ConfigureAwait(false);
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                var (status, reason) = close();
                await socket.CloseOutputAsync(status, reason, abort.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            // The peer is gone or the grace ran out: nothing more to say to it.
            await abort.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Answers one message of the client; the answer says whether the channel stays open.</summary>
    private async Task<(byte[] Answer, bool KeepOpen)> AnswerAsync(HttpContext context, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        // Every string of the message, the push's included, is checked once here. A message that fails is still read for
        // its request number, comparing names and the type by their bytes, so nothing is turned into text.
        var valid = JsonText.IsValid(message.Span);
        var isPush = false;
        long? request = null;
        ReadOnlyMemory<byte> body = default;
        try
        {
            var reader = new Utf8JsonReader(message.Span, new JsonReaderOptions { MaxDepth = ProtocolLimits.MaxMessageDepth + 1 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new MalformedMessageException("A live message must be a JSON object.");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (Is(ref reader, "type"u8, valid))
                {
                    reader.Read();
                    isPush = reader.TokenType == JsonTokenType.String ? Is(ref reader, PushType, valid) : throw new MalformedMessageException("'type' must be a string.");
                }
                else if (Is(ref reader, "request"u8, valid))
                {
                    reader.Read();
                    request = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var id) ? id : throw new MalformedMessageException("'request' must be an integer.");
                }
                else if (Is(ref reader, "push"u8, valid))
                {
                    reader.Read();
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    body = message[start..(int)reader.BytesConsumed];
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException e) when (valid)
        {
            return (Error(request, RequestBody.Malformed(message.Span, e, "message")), true);
        }
        catch (JsonException)
        {
        }

        if (!valid)
        {
            return (Error(request, new ProtocolError(ProtocolErrorCodes.Malformed, JsonText.Invalid("message"))), true);
        }

        if (!isPush || body.IsEmpty || request is null)
        {
            return (Error(request, new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"A client sends only '{LiveProtocol.Push}' messages, each with a 'request' number and a 'push'.")), true);
        }

        var (push, invalid) = RequestBody.ParseText(body.Span, PushReader.Read, "push");
        if (invalid is null && options.Limits.Check(push!) is { } breach)
        {
            invalid = breach;
        }

        if (invalid is not null)
        {
            return (Error(request, invalid), true);
        }

        var (response, refused, forbidden) = await http.ApplyPushAsync(context.User, push!, cancellationToken).ConfigureAwait(false);
        if (forbidden is not null)
        {
            Log.ScopeForbidden(logger, LogText.Sanitize(context.User.Identity?.Name ?? "(unnamed)"), forbidden);
            return (LiveFrames.Error(request, StatusCodes.Status403Forbidden, ProtocolErrorCodes.ScopeForbidden, $"The caller may not use scope '{forbidden}'.", forbidden), true);
        }

        return refused is not null ? (Error(request, refused), true) : (LiveFrames.Pushed(request.Value, response!), true);
    }

    /// <summary>Compares a name or string with <paramref name="text"/>; in text that failed <see cref="JsonText"/>, an escaped one is unknown.</summary>
    private static bool Is(ref Utf8JsonReader reader, ReadOnlySpan<byte> text, bool valid) =>
        reader.ValueIsEscaped ? valid && reader.ValueTextEquals(text) : reader.ValueSpan.SequenceEqual(text);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private byte[] Error(long? request, ProtocolError error)
    {
        var status = Problem.StatusOf(error.Code);
        Log.RequestRefused(logger, LiveProtocol.Path, status, error.Code);
        return LiveFrames.Error(request, status, error.Code, error.Message);
    }

    private Task RefuseAsync(HttpContext context, string detail)
    {
        Log.RequestRefused(logger, LogText.Sanitize(context.Request.Path), StatusCodes.Status400BadRequest, ProtocolErrorCodes.InvalidMessage);
        return Problem.WriteAsync(context, StatusCodes.Status400BadRequest, ProtocolErrorCodes.InvalidMessage, detail);
    }
}
