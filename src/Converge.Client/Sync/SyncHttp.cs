using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol.Messages;

namespace Converge.Client.Sync;

/// <summary>The client side of the HTTP API v1: push and pull, with the access token on every request.</summary>
internal sealed class SyncHttp : IDisposable
{
    private const int MaxErrorBodyBytes = 16 * 1024;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    private readonly HttpClient _http;
    private readonly Func<CancellationToken, ValueTask<string?>>? _tokens;

    public SyncHttp(Uri serverUrl, string basePath, HttpMessageHandler? handler, TimeSpan timeout, Func<CancellationToken, ValueTask<string?>>? tokens)
    {
        _tokens = tokens;
        _http = handler is null
            ? new HttpClient(
                new SocketsHttpHandler
                {
                    // A device that lost its network should learn it is offline in seconds, not after the whole request timeout.
                    ConnectTimeout = timeout < ConnectTimeout ? timeout : ConnectTimeout,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                    AutomaticDecompression = DecompressionMethods.All,
                },
                disposeHandler: true)
            : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = timeout;
        _http.BaseAddress = new Uri(serverUrl.GetLeftPart(UriPartial.Path).TrimEnd('/') + basePath.TrimEnd('/') + "/v1/", UriKind.Absolute);
    }

    public Uri BaseAddress => _http.BaseAddress!;

    /// <summary>Gets the access token to send, if any.</summary>
    public async ValueTask<string?> TokenAsync(CancellationToken cancellationToken) =>
        _tokens is null ? null : await _tokens(cancellationToken).ConfigureAwait(false);

    /// <summary>Sends a push whose body is already serialized, with its Content-Length, so the server can check it before reading it.</summary>
    public async Task<PushResponse> PushAsync(byte[] body, CancellationToken cancellationToken)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        using var message = new HttpRequestMessage(HttpMethod.Post, "push") { Content = content };
        var (buffer, length) = await SendAsync(message, cancellationToken).ConfigureAwait(false);
        try
        {
            return Parse(message, buffer, length, ProtocolJson.PushResponse);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Pulls a page; dispose it once applied.</summary>
    public async Task<PulledPage> PullAsync(string scope, long after, int limit, CancellationToken cancellationToken)
    {
        var uri = string.Create(CultureInfo.InvariantCulture, $"pull?scope={Uri.EscapeDataString(scope)}&after={after}&limit={limit}");
        using var message = new HttpRequestMessage(HttpMethod.Get, uri);
        var (buffer, length) = await SendAsync(message, cancellationToken).ConfigureAwait(false);
        try
        {
            return PulledPage.Parse(buffer, length);
        }
        catch (JsonException e)
        {
            throw new ConvergeSyncException($"The server's answer to {message.Method} {message.RequestUri} is not a valid {nameof(PullResponse)}: {e.Message}", e);
        }
    }

    public void Dispose() => _http.Dispose();

    private static T Parse<T>(HttpRequestMessage message, byte[] buffer, int length, JsonTypeInfo<T> typeInfo)
        where T : class
    {
        try
        {
            return (length == 0 ? null : JsonSerializer.Deserialize(buffer.AsSpan(0, length), typeInfo))
                ?? throw new ConvergeSyncException($"The server answered {message.Method} {message.RequestUri} with an empty body.");
        }
        catch (JsonException e)
        {
            throw new ConvergeSyncException($"The server's answer to {message.Method} {message.RequestUri} is not a valid {typeof(T).Name}: {e.Message}", e);
        }
    }

    /// <summary>Sends a request and reads the whole body of its successful answer into a pooled buffer, which the caller returns.</summary>
    private async Task<(byte[] Buffer, int Length)> SendAsync(HttpRequestMessage message, CancellationToken cancellationToken)
    {
        if (_tokens is not null && await _tokens(cancellationToken).ConfigureAwait(false) is { Length: > 0 } token)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                throw await ErrorAsync(message, response, cancellationToken).ConfigureAwait(false);
            }

            // Read whole, then parsed in one synchronous pass: much cheaper than deserializing while the stream arrives.
            using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var buffer = ArrayPool<byte>.Shared.Rent(response.Content.Headers.ContentLength is { } declared and > 0 and < int.MaxValue - 1 ? (int)declared + 1 : 64 * 1024);
            var length = 0;
            try
            {
                while (true)
                {
                    if (length == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, length).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return (buffer, length);
                    }

                    length += read;
                }
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw;
            }
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // HttpClient reports its own timeout as a cancellation the caller did not ask for.
            throw new TimeoutException($"{message.Method} {message.RequestUri} took longer than {_http.Timeout}.", e);
        }
    }

    private static async Task<ConvergeSyncException> ErrorAsync(HttpRequestMessage request, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string? code = null;
        string? detail = null;
        string? scope = null;
        try
        {
            var bytes = await ReadLimitedAsync(response.Content, cancellationToken).ConfigureAwait(false);
            if (bytes.Length > 0)
            {
                using var document = JsonDocument.Parse(bytes);
                if (document.RootElement.ValueKind == JsonValueKind.Object)
                {
                    code = Text(document.RootElement, "code");
                    detail = Text(document.RootElement, "detail") ?? Text(document.RootElement, "title");
                    scope = Text(document.RootElement, "scope");
                }
            }
        }
        catch (JsonException)
        {
            // Not a problem document (a proxy's error page, say): the status alone tells what happened.
        }

        var status = (int)response.StatusCode;
        var message = $"The server answered {request.Method} {request.RequestUri} with {status} {response.ReasonPhrase}"
            + (code is null ? "" : $" ({code})") + (detail is null ? "." : $": {detail}");
        return new ConvergeSyncException(message, response.StatusCode, code, scope);

        static string? Text(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[MaxErrorBodyBytes];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
        }

        return total == buffer.Length ? [] : buffer[..total];
    }
}
