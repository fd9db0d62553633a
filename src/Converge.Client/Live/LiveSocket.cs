using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Converge.Client.Sync;
using Converge.Protocol.Messages;
using Converge.WebSockets;

namespace Converge.Client.Live;

/// <summary>A change notice from the live channel: a scope's page of changes after a cursor, or a poke (no page) to pull the scope.</summary>
internal sealed class LiveNotice(string scope, long after, PulledPage? page) : IDisposable
{
    public string Scope { get; } = scope;

    public long After { get; } = after;

    public PulledPage? Page { get; } = page;

    public void Dispose() => Page?.Dispose();
}

/// <summary>
/// One live WebSocket to the server: connects and waits for <c>ready</c>, then a receive loop queues change notices and
/// completes the answer of the one push in flight. It never applies anything itself.
/// </summary>
internal sealed class LiveSocket : IAsyncDisposable
{
    private const int MaxMessageBytes = 64 * 1024 * 1024;

    /// <summary>Notices waiting past this are dropped and their scope pulled instead, so a slow store cannot grow memory without bound.</summary>
    private const int MaxWaiting = 1_024;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = ProtocolLimits.MaxMessageDepth + 2 };

    private readonly ClientWebSocket _socket;
    private readonly Action _wake;
    private readonly ConcurrentQueue<LiveNotice> _notices = new();
    private readonly Lock _lock = new();
    private HashSet<string>? _missed;
    private TaskCompletionSource<PushResponse>? _pending;
    private long _pendingRequest;
    private long _nextRequest;
    private Task _receiving = Task.CompletedTask;
    private volatile Exception? _ended;

    private LiveSocket(ClientWebSocket socket, Action wake)
    {
        _socket = socket;
        _wake = wake;
    }

    /// <summary>Gets why the connection ended, once it has; <see langword="null"/> while it is open.</summary>
    public Exception? Ended => _ended;

    /// <summary>Connects, waits for the server's <c>ready</c>, and starts receiving.</summary>
    /// <exception cref="ConvergeSyncException">The server refused the connection (with its HTTP status) or broke the protocol.</exception>
    /// <exception cref="WebSocketException">The server cannot be reached.</exception>
    public static async Task<LiveSocket> ConnectAsync(Uri uri, string? token, HttpMessageHandler? handler, TimeSpan heartbeat, TimeSpan timeout, Action wake, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        try
        {
            // The client pings after half the heartbeat in silence and drops the connection when no pong comes within the other half.
            socket.Options.KeepAliveInterval = heartbeat / 2;
            socket.Options.KeepAliveTimeout = heartbeat / 2;
            socket.Options.CollectHttpResponseDetails = true;
            if (token is { Length: > 0 })
            {
                socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
            }

            using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connectTimeout.CancelAfter(timeout);
            try
            {
                if (handler is null)
                {
                    await socket.ConnectAsync(uri, connectTimeout.Token).ConfigureAwait(false);
                }
                else
                {
                    using var invoker = new HttpMessageInvoker(handler, disposeHandler: false);
                    await socket.ConnectAsync(uri, invoker, connectTimeout.Token).ConfigureAwait(false);
                }
            }
            catch (WebSocketException e) when (socket.HttpStatusCode is not 0 and not HttpStatusCode.SwitchingProtocols)
            {
                var status = socket.HttpStatusCode;
                var code = status switch
                {
                    HttpStatusCode.Unauthorized => ProtocolErrorCodes.Unauthenticated,
                    HttpStatusCode.Forbidden => ProtocolErrorCodes.ScopeForbidden,
                    _ => null,
                };
                throw new ConvergeSyncException($"The server refused the live connection with {(int)status} {status}: {e.Message}", status, code, null);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"The live connection to {uri} was not made within {timeout.TotalSeconds:0.#} s.", e);
            }

            var live = new LiveSocket(socket, wake);
            using (var first = await live.ReceiveAsync(connectTimeout.Token).ConfigureAwait(false))
            {
                if (first is null || Envelope.Read(first.Memory.Span).Type != LiveProtocol.Ready)
                {
                    throw new ConvergeSyncException("The server's live channel did not open with a 'ready' message.");
                }
            }

            live._receiving = Task.Run(live.ReceiveLoopAsync, CancellationToken.None);
            return live;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Takes the next waiting notice.</summary>
    public bool TryTake(out LiveNotice notice) => _notices.TryDequeue(out notice!);

    /// <summary>Takes the scopes whose notices were dropped because too many waited: they are pulled instead.</summary>
    public HashSet<string>? TakeMissed()
    {
        lock (_lock)
        {
            var missed = _missed;
            _missed = null;
            return missed;
        }
    }

    /// <summary>Sends a push (the JSON of a <see cref="PushRequest"/>) and waits for its answer; one at a time.</summary>
    /// <exception cref="ConvergeSyncException">The server refused the push (with the HTTP status and code the same refusal has over HTTP).</exception>
    /// <exception cref="WebSocketException">The connection was lost; the push may or may not have been applied, and is sent again later.</exception>
    public async Task<PushResponse> PushAsync(byte[] push, CancellationToken cancellationToken)
    {
        var request = Interlocked.Increment(ref _nextRequest);
        var answer = new TaskCompletionSource<PushResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_ended is { } ended)
            {
                throw Lost(ended);
            }

            _pending = answer;
            _pendingRequest = request;
        }

        var head = Encoding.UTF8.GetBytes($"{{\"type\":\"{LiveProtocol.Push}\",\"request\":{request},\"push\":");
        var message = new byte[head.Length + push.Length + 1];
        head.CopyTo(message, 0);
        push.CopyTo(message, head.Length);
        message[^1] = (byte)'}';
        await _socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, cancellationToken).ConfigureAwait(false);
        return await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", grace.Token).ConfigureAwait(false);
                await _receiving.WaitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
                // The server is gone already: nothing to say goodbye to.
            }
        }

        _socket.Abort();
        _socket.Dispose();
        await _receiving.ConfigureAwait(false);
        while (_notices.TryDequeue(out var notice))
        {
            notice.Dispose();
        }
    }

    private static WebSocketException Lost(Exception cause) => new(WebSocketError.ConnectionClosedPrematurely, "The live connection was lost: " + cause.Message, cause);

    private async Task ReceiveLoopAsync()
    {
        Exception ended;
        try
        {
            while (true)
            {
                var message = await ReceiveAsync(CancellationToken.None).ConfigureAwait(false);
                if (message is null)
                {
                    var reason = _socket.CloseStatusDescription is { Length: > 0 } text ? text : _socket.CloseStatus?.ToString() ?? "closed";
                    ended = new WebSocketException(WebSocketError.ConnectionClosedPrematurely, $"The server closed the live connection: {reason}");
                    break;
                }

                Dispatch(message);
            }
        }
        catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException or ConvergeSyncException)
        {
            ended = e;
        }

        TaskCompletionSource<PushResponse>? pending;
        lock (_lock)
        {
            _ended = ended;
            pending = _pending;
            _pending = null;
        }

        pending?.TrySetException(Lost(ended));
        _wake();
    }

    private void Dispatch(Message message)
    {
        var keep = false;
        try
        {
            Envelope envelope;
            try
            {
                envelope = Envelope.Read(message.Memory.Span);
            }
            catch (JsonException e)
            {
                throw new ConvergeSyncException("The server sent a live message that is not valid: " + e.Message, e);
            }

            switch (envelope.Type)
            {
                case LiveProtocol.Changes when envelope.Part.Length > 0 && envelope.After is { } after:
                    PulledPage page;
                    var buffer = message.Buffer;

                    // The page owns the buffer from here, and returns it to the pool even when it cannot be parsed.
                    keep = true;
                    try
                    {
                        page = PulledPage.Parse(buffer, envelope.Part.Start, envelope.Part.Length);
                    }
                    catch (JsonException e)
                    {
                        throw new ConvergeSyncException("The server sent a live page that is not valid: " + e.Message, e);
                    }

                    Queue(new LiveNotice(page.Scope, after, page));
                    break;
                case LiveProtocol.Poke when envelope.Scope is { } scope:
                    Queue(new LiveNotice(scope, 0, null));
                    break;
                case LiveProtocol.Pushed when envelope.Part.Length > 0:
                    PushResponse response;
                    try
                    {
                        response = JsonSerializer.Deserialize(message.Memory.Span.Slice(envelope.Part.Start, envelope.Part.Length), ProtocolJson.PushResponse)
                            ?? throw new JsonException("The answer is null.");
                    }
                    catch (JsonException e)
                    {
                        throw new ConvergeSyncException("The server's answer to a live push is not a valid PushResponse: " + e.Message, e);
                    }

                    Answer(envelope.Request, answer => answer.TrySetResult(response));
                    break;
                case LiveProtocol.Error when envelope.Request is not null:
                    var error = new ConvergeSyncException(envelope.Detail ?? "The server refused the request.", (HttpStatusCode)(envelope.Status ?? 400), envelope.Code, envelope.Scope);
                    Answer(envelope.Request, answer => answer.TrySetException(error));
                    break;
                case LiveProtocol.Error:
                    throw new ConvergeSyncException($"The server's live channel reported an error: {envelope.Detail}", (HttpStatusCode)(envelope.Status ?? 400), envelope.Code, envelope.Scope);
                case LiveProtocol.Ready:
                    break;
                default:
                    // A message type this client does not know: a newer server's; skipped, as the protocol allows.
                    break;
            }
        }
        finally
        {
            if (keep)
            {
                message.Release();
            }

            message.Dispose();
        }
    }

    private void Answer(long? request, Action<TaskCompletionSource<PushResponse>> complete)
    {
        TaskCompletionSource<PushResponse>? pending;
        lock (_lock)
        {
            if (_pending is null || request != _pendingRequest)
            {
                throw new ConvergeSyncException($"The server answered live request {request}, which is not the one waiting.");
            }

            pending = _pending;
            _pending = null;
        }

        complete(pending);
    }

    private void Queue(LiveNotice notice)
    {
        if (_notices.Count >= MaxWaiting)
        {
            lock (_lock)
            {
                (_missed ??= new HashSet<string>(StringComparer.Ordinal)).Add(notice.Scope);
            }

            notice.Dispose();
        }
        else
        {
            _notices.Enqueue(notice);
        }

        _wake();
    }

    /// <summary>Receives one whole message into a pooled buffer; null when the server closed.</summary>
    private async Task<Message?> ReceiveAsync(CancellationToken cancellationToken)
    {
        var (buffer, length, tooLarge) = await WholeMessage.ReceiveAsync(_socket, 16 * 1024, MaxMessageBytes, cancellationToken).ConfigureAwait(false);
        if (tooLarge)
        {
            throw new ConvergeSyncException($"The server sent a live message larger than {MaxMessageBytes} bytes.");
        }

        return buffer is null ? null : new Message(buffer, length);
    }

    /// <summary>A received message in a pooled buffer.</summary>
    private sealed class Message(byte[] buffer, int length) : IDisposable
    {
        private byte[]? _buffer = buffer;

        public byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(Message));

        public ReadOnlyMemory<byte> Memory => Buffer.AsMemory(0, length);

        /// <summary>Hands the buffer to another owner.</summary>
        public void Release() => _buffer = null;

        public void Dispose()
        {
            if (_buffer is { } owned)
            {
                _buffer = null;
                ArrayPool<byte>.Shared.Return(owned);
            }
        }
    }

    /// <summary>The members of a live message, with the position of its payload (<c>page</c> or <c>response</c>).</summary>
    private readonly record struct Envelope(string? Type, long? Request, long? After, string? Scope, int? Status, string? Code, string? Detail, (int Start, int Length) Part)
    {
        public static Envelope Read(ReadOnlySpan<byte> json)
        {
            var reader = new Utf8JsonReader(json, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("A live message must be a JSON object.");
            }

            string? type = null, scope = null, code = null, detail = null;
            long? request = null, after = null;
            int? status = null;
            var part = (Start: 0, Length: 0);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    type = Text(ref reader);
                }
                else if (reader.ValueTextEquals("request"u8))
                {
                    request = Number(ref reader);
                }
                else if (reader.ValueTextEquals("after"u8))
                {
                    after = Number(ref reader);
                }
                else if (reader.ValueTextEquals("scope"u8))
                {
                    scope = Text(ref reader);
                }
                else if (reader.ValueTextEquals("status"u8))
                {
                    status = (int)Number(ref reader);
                }
                else if (reader.ValueTextEquals("code"u8))
                {
                    code = Text(ref reader);
                }
                else if (reader.ValueTextEquals("detail"u8))
                {
                    detail = Text(ref reader);
                }
                else if (reader.ValueTextEquals("page"u8) || reader.ValueTextEquals("response"u8))
                {
                    Next(ref reader);
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        throw new JsonException("A live message's payload must be a JSON object.");
                    }

                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    part = (start, (int)reader.BytesConsumed - start);
                }
                else
                {
                    Next(ref reader);
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject)
            {
                throw new JsonException("A live message is not one complete JSON object.");
            }

            return new Envelope(type, request, after, scope, status, code, detail, part);
        }

        private static string? Text(ref Utf8JsonReader reader)
        {
            Next(ref reader);
            return reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString(),
                JsonTokenType.Null => null,
                _ => throw new JsonException("A live message member that must be a string is not."),
            };
        }

        private static long Number(ref Utf8JsonReader reader)
        {
            Next(ref reader);
            return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value)
                ? value
                : throw new JsonException("A live message member that must be an integer is not.");
        }

        private static void Next(ref Utf8JsonReader reader)
        {
            if (!reader.Read())
            {
                throw new JsonException("A live message ends too early.");
            }
        }
    }
}
