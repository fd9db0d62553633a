using System.Text.Json;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;

namespace Converge.Client;

/// <summary>Options of a <see cref="ConvergeClient"/>.</summary>
/// <remarks>Checked by <see cref="ConvergeClient.OpenAsync"/>, which refuses invalid options with an <see cref="ArgumentException"/> listing every problem.</remarks>
public sealed class ConvergeClientOptions
{
    /// <summary>The largest page a pull may ask for, the server's bound.</summary>
    public const int MaxPullPageSize = 5_000;

    /// <summary>Gets or sets the path of the SQLite file that holds the local store; its folder is created if missing.</summary>
    /// <value>Required.</value>
    public string DatabasePath { get; set; } = "";

    /// <summary>Gets or sets the sync server's address, such as <c>https://sync.example.com/</c>.</summary>
    /// <value>The default is <see langword="null"/>: the client works locally only and <see cref="ConvergeClient.SyncAsync"/> is refused.</value>
    public Uri? ServerUrl { get; set; }

    /// <summary>Gets or sets the path under <see cref="ServerUrl"/> where the server maps its endpoints.</summary>
    /// <value>The default is <c>/converge</c>; empty maps them at the root.</value>
    public string BasePath { get; set; } = "/converge";

    /// <summary>Gets the scopes this client holds and syncs; the first one is the default scope of collections.</summary>
    /// <value>At least one is required, such as <c>user:alice</c>; each 1 to 128 ASCII letters, digits and <c>- _ . ~ : @ / + = |</c> (see <see cref="ProtocolLimits.CheckScope"/>).</value>
    public IList<string> Scopes { get; } = new List<string>();

    /// <summary>Gets or sets the function that supplies an access token for each request, sent as <c>Authorization: Bearer</c>.</summary>
    /// <value>The default is <see langword="null"/>: requests carry no credentials. A function returning <see langword="null"/> also sends none.</value>
    public Func<CancellationToken, ValueTask<string?>>? AccessTokenProvider { get; set; }

    /// <summary>Gets or sets the HTTP handler requests go through, for proxies, custom certificates or tests.</summary>
    /// <value>The default is <see langword="null"/>: a <see cref="SocketsHttpHandler"/> owned by the client. A handler given here is not disposed by the client.</value>
    public HttpMessageHandler? HttpMessageHandler { get; set; }

    /// <summary>Gets or sets how long one HTTP request may take before it counts as a network failure.</summary>
    /// <value>The default is 100 seconds.</value>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>Gets or sets how many outbox mutations one push carries.</summary>
    /// <value>The default is 500; at most <see cref="ProtocolLimits.MaxMutationsPerPush"/> of <see cref="Limits"/>.</value>
    public int PushBatchSize { get; set; } = 500;

    /// <summary>Gets or sets how many changed documents one pull page asks for.</summary>
    /// <value>The default is 1,000; at most <see cref="MaxPullPageSize"/>.</value>
    public int PullPageSize { get; set; } = 1_000;

    /// <summary>Gets or sets the System.Text.Json options that turn the application's document types into JSON objects and back.</summary>
    /// <value>The default is <see cref="JsonSerializerDefaults.Web"/> (camelCase names, case-insensitive reading). For trimmed or AOT apps, set a <see cref="JsonSerializerOptions.TypeInfoResolver"/> or pass a JsonTypeInfo to <see cref="ConvergeClient.Collection{T}(string, System.Text.Json.Serialization.Metadata.JsonTypeInfo{T}, string?)"/>.</value>
    public JsonSerializerOptions DocumentSerializerOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>Gets or sets the limits local writes are checked against before they enter the outbox; keep them equal to the server's.</summary>
    /// <value>The default is the protocol's defaults, which the server also uses unless configured otherwise.</value>
    public ProtocolLimits Limits { get; set; } = new();

    /// <summary>Gets or sets the wall clock of the client's hybrid logical clock and of sync durations.</summary>
    /// <value>The default is <see cref="TimeProvider.System"/>.</value>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Gets or sets the longest a live connection may go without a sign of life from the server before it is dropped as dead and made again.</summary>
    /// <value>The default is 30 seconds. The client pings the server after half of it in silence, and gives the answer the other half.</value>
    public TimeSpan LiveHeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the delay before the first attempt to make a lost live connection again; each failed attempt doubles it, up to <see cref="LiveMaxReconnectDelay"/>, with jitter.</summary>
    /// <value>The default is 500 milliseconds.</value>
    public TimeSpan LiveReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest delay between attempts to make a lost live connection again.</summary>
    /// <value>The default is 30 seconds.</value>
    public TimeSpan LiveMaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the factory of the client's loggers.</summary>
    /// <value>The default is <see langword="null"/>: nothing is logged.</value>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Checks the options and lists what is wrong.</summary>
    /// <returns>The problems found; empty when the options are valid.</returns>
    internal List<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            errors.Add("DatabasePath is required: the SQLite file of the local store.");
        }

        if (ServerUrl is not null && (!ServerUrl.IsAbsoluteUri || (ServerUrl.Scheme != Uri.UriSchemeHttp && ServerUrl.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"ServerUrl must be an absolute http or https address; it is '{ServerUrl}'.");
        }

        if (BasePath is null || (BasePath.Length > 0 && (BasePath[0] != '/' || BasePath.Contains('?', StringComparison.Ordinal) || BasePath.Contains('#', StringComparison.Ordinal))))
        {
            errors.Add($"BasePath must be empty or a path starting with '/'; it is '{BasePath}'.");
        }

        if (Limits is null)
        {
            errors.Add("Limits is required.");
        }
        else
        {
            try
            {
                Limits.Validate();
            }
            catch (ArgumentException e)
            {
                errors.Add("Limits are invalid: " + e.Message);
            }
        }

        if (Scopes.Count == 0)
        {
            errors.Add("Scopes must hold at least one scope; the first is the default scope.");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var scope in Scopes)
        {
            if ((Limits ?? new ProtocolLimits()).CheckScope(scope) is { } error)
            {
                errors.Add($"Scope '{scope}' is invalid: {error.Message}");
            }
            else if (!seen.Add(scope))
            {
                errors.Add($"Scope '{scope}' is listed twice.");
            }
        }

        var maxPush = Limits?.MaxMutationsPerPush ?? new ProtocolLimits().MaxMutationsPerPush;
        if (PushBatchSize < 1 || PushBatchSize > maxPush)
        {
            errors.Add($"PushBatchSize must be between 1 and {maxPush}; it is {PushBatchSize}.");
        }

        if (PullPageSize < 1 || PullPageSize > MaxPullPageSize)
        {
            errors.Add($"PullPageSize must be between 1 and {MaxPullPageSize}; it is {PullPageSize}.");
        }

        if (LiveHeartbeatTimeout < TimeSpan.FromMilliseconds(100) || LiveHeartbeatTimeout > TimeSpan.FromHours(1))
        {
            errors.Add($"LiveHeartbeatTimeout must be between 100 milliseconds and an hour; it is {LiveHeartbeatTimeout}.");
        }

        if (LiveReconnectDelay <= TimeSpan.Zero || LiveMaxReconnectDelay < LiveReconnectDelay || LiveMaxReconnectDelay > TimeSpan.FromHours(1))
        {
            errors.Add($"LiveReconnectDelay must be positive and LiveMaxReconnectDelay at least it and at most an hour; they are {LiveReconnectDelay} and {LiveMaxReconnectDelay}.");
        }

        if (RequestTimeout != Timeout.InfiniteTimeSpan && (RequestTimeout <= TimeSpan.Zero || RequestTimeout > TimeSpan.FromDays(1)))
        {
            errors.Add($"RequestTimeout must be positive and at most a day, or Timeout.InfiniteTimeSpan; it is {RequestTimeout}.");
        }

        if (DocumentSerializerOptions is null)
        {
            errors.Add("DocumentSerializerOptions is required.");
        }

        if (TimeProvider is null)
        {
            errors.Add("TimeProvider is required.");
        }

        return errors;
    }
}
