using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
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

    public async Task<PushResponse> PushAsync(PushRequest request, CancellationToken cancellationToken)
    {
        // Serialized up front, so the request carries a Content-Length the server can check before reading the body.
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.PushRequest));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        using var message = new HttpRequestMessage(HttpMethod.Post, "push") { Content = content };
        return await SendAsync(message, ProtocolJson.PushResponse, cancellationToken).ConfigureAwait(false);
    }

    public async Task<PullResponse> PullAsync(string scope, long after, int limit, CancellationToken cancellationToken)
    {
        var uri = string.Create(CultureInfo.InvariantCulture, $"pull?scope={Uri.EscapeDataString(scope)}&after={after}&limit={limit}");
        using var message = new HttpRequestMessage(HttpMethod.Get, uri);
        return await SendAsync(message, ProtocolJson.PullResponse, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _http.Dispose();

    private async Task<T> SendAsync<T>(HttpRequestMessage message, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class
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

            try
            {
                return await response.Content.ReadFromJsonAsync(typeInfo, cancellationToken).ConfigureAwait(false)
                    ?? throw new ConvergeSyncException($"The server answered {message.Method} {message.RequestUri} with an empty body.");
            }
            catch (JsonException e)
            {
                throw new ConvergeSyncException($"The server's answer to {message.Method} {message.RequestUri} is not a valid {typeof(T).Name}: {e.Message}", e);
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
        return new ConvergeSyncException(message, response.StatusCode, code);

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
