using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Client.Storage;
using Converge.Client.Sync;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Client;

/// <summary>An offline-first local store of JSON documents that syncs with a Converge server.</summary>
/// <remarks>
/// <para>
/// Writes go to a local SQLite file at once, together with an outbox entry, and raise change events; they never wait
/// for the network. <see cref="SyncAsync"/> pushes the outbox and pulls what changed on the server, re-applying the
/// still-pending local writes on top so they never flicker away. One client per database file; thread-safe.
/// </para>
/// <para>Open with <see cref="OpenAsync"/> and dispose when done; disposing ends watch streams.</para>
/// </remarks>
public sealed partial class ConvergeClient : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SyncHttp? _http;
    private readonly CancellationTokenSource _disposing = new();
    private readonly SemaphoreSlim _syncGate = new(1, 1);
    private readonly HashSet<string> _scopes;
    private volatile HybridClock _clock;
    private volatile string _clientId;
    private int _disposed;

    private ConvergeClient(ConvergeClientOptions options, ClientStore store, ILoggerFactory loggerFactory)
    {
        _logger = loggerFactory.CreateLogger("Converge.Client");
        _time = options.TimeProvider;
        Store = store;
        Limits = options.Limits;
        DocumentOptions = Freeze(options.DocumentSerializerOptions);
        PushBatchSize = options.PushBatchSize;
        PullPageSize = options.PullPageSize;
        Scopes = [.. options.Scopes];
        _scopes = new HashSet<string>(Scopes, StringComparer.Ordinal);
        _clientId = Protocol.ReplicaId.Format(store.ReplicaId);

        // The server is the authority on time: its clock is taken in however far ahead it is. The server defends
        // itself against this client's clock, not the other way round.
        _clock = new HybridClock(store.ReplicaId, _time, store.Clock, TimeSpan.MaxValue);
        Changes = new ChangeHub<StoreChange>(_logger);
        ConflictChanges = new ChangeHub<ConflictChangedEventArgs>(_logger);
        Conflicts = new ConflictInbox(this);
        if (options.ServerUrl is not null)
        {
            _http = new SyncHttp(options.ServerUrl, options.BasePath, options.HttpMessageHandler, options.RequestTimeout, options.AccessTokenProvider);
        }

        _handler = options.HttpMessageHandler;
        _requestTimeout = options.RequestTimeout;
        LiveHeartbeatTimeout = options.LiveHeartbeatTimeout;
        LiveReconnectDelay = options.LiveReconnectDelay;
        LiveMaxReconnectDelay = options.LiveMaxReconnectDelay;
        Live = new LiveSync(this, loggerFactory.CreateLogger("Converge.Client.Live"));
    }

    /// <summary>Gets this client's replica id: 16 lowercase hex digits, made when its store was created and kept in it.</summary>
    /// <value>
    /// It changes once in a store's life in one case: when the server answers that the client reuses mutation ids it
    /// already applied (the store was restored from a backup or copied to another device), the client takes a new id
    /// and renumbers its outbox, so the copies go on as two replicas.
    /// </value>
    public string ClientId => _clientId;

    /// <summary>Gets the scopes this client holds and syncs; the first is the default scope.</summary>
    public IReadOnlyList<string> Scopes { get; }

    /// <summary>Gets the default scope of collections: the first of <see cref="ConvergeClientOptions.Scopes"/>.</summary>
    public string DefaultScope => Scopes[0];

    /// <summary>Gets the inbox of conflicts left for a person to resolve.</summary>
    public ConflictInbox Conflicts { get; }

    internal ClientStore Store { get; }

    /// <summary>Gets the client's clock; replaced, with the same last reading and the new node, when the client takes a new replica id.</summary>
    internal HybridClock Clock => _clock;

    internal ProtocolLimits Limits { get; }

    internal JsonSerializerOptions DocumentOptions { get; }

    internal int PushBatchSize { get; }

    internal int PullPageSize { get; }

    internal ChangeHub<StoreChange> Changes { get; }

    internal ChangeHub<ConflictChangedEventArgs> ConflictChanges { get; }

    internal ILogger Logger => _logger;

    /// <summary>Opens a client on its local store, creating the store if it does not exist.</summary>
    /// <param name="options">The options; they are checked, and later changes to them have no effect.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The client.</returns>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    /// <exception cref="InvalidOperationException">Another client has the store open, or the store was written by a newer version.</exception>
    public static Task<ConvergeClient> OpenAsync(ConvergeClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid ConvergeClientOptions: " + string.Join(" ", errors), nameof(options));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var store = ClientStore.Open(options.DatabasePath);
        try
        {
            var client = new ConvergeClient(options, store, options.LoggerFactory ?? NullLoggerFactory.Instance);
            using (var connection = store.OpenRead())
            {
                Log.Opened(client._logger, client.ClientId, store.Path, client.Scopes.Count, StoreReads.OutboxCount(connection));
            }

            return Task.FromResult(client);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>Gets a collection of documents of type <typeparamref name="T"/>, serialized with <see cref="ConvergeClientOptions.DocumentSerializerOptions"/>.</summary>
    /// <typeparam name="T">The document type; it must serialize to a JSON object.</typeparam>
    /// <param name="name">The collection's name.</param>
    /// <param name="scope">The scope, one of <see cref="Scopes"/>; by default <see cref="DefaultScope"/>.</param>
    /// <returns>The collection. Cheap to create; instances for the same name and scope share their documents and events.</returns>
    /// <exception cref="ArgumentException">The name is invalid or the scope is not one of <see cref="Scopes"/>.</exception>
    public DocumentCollection<T> Collection<T>(string name, string? scope = null) =>
        Collection(name, (JsonTypeInfo<T>)DocumentOptions.GetTypeInfo(typeof(T)), scope);

    /// <summary>Gets a collection of documents of type <typeparamref name="T"/>, serialized with the given metadata (for source-generated, trimmed or AOT apps).</summary>
    /// <typeparam name="T">The document type; it must serialize to a JSON object.</typeparam>
    /// <param name="name">The collection's name.</param>
    /// <param name="typeInfo">The metadata of <typeparamref name="T"/>, such as <c>MyJsonContext.Default.Todo</c>.</param>
    /// <param name="scope">The scope, one of <see cref="Scopes"/>; by default <see cref="DefaultScope"/>.</param>
    /// <returns>The collection.</returns>
    /// <exception cref="ArgumentException">The name is invalid or the scope is not one of <see cref="Scopes"/>.</exception>
    public DocumentCollection<T> Collection<T>(string name, JsonTypeInfo<T> typeInfo, string? scope = null)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        ThrowIfDisposed();
        CheckName(name, "collection", nameof(name));
        scope ??= DefaultScope;
        if (!_scopes.Contains(scope))
        {
            throw new ArgumentException($"Scope '{scope}' is not one of this client's scopes ({string.Join(", ", Scopes)}).", nameof(scope));
        }

        return new DocumentCollection<T>(this, scope, name, typeInfo);
    }

    /// <summary>Counts the local writes not yet acknowledged by the server.</summary>
    /// <param name="cancellationToken">Cancels the count.</param>
    /// <returns>The number of mutations in the outbox.</returns>
    public Task<long> GetPendingCountAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        using var connection = Store.OpenRead();
        return Task.FromResult(StoreReads.OutboxCount(connection));
    }

    /// <summary>Stops sync, ends watch streams and closes the local store.</summary>
    /// <returns>A task that completes when the store is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await Live.StopAsync().ConfigureAwait(false);
        await _disposing.CancelAsync().ConfigureAwait(false);
        await _syncGate.WaitAsync().ConfigureAwait(false);
        try
        {
            Changes.Complete();
            ConflictChanges.Complete();
            _http?.Dispose();
            Store.Dispose();
            Log.Closed(_logger, ClientId);
        }
        finally
        {
            _syncGate.Release();
            _disposing.Dispose();
        }
    }

    /// <summary>A locked copy of the application's serializer options, so a later change to them cannot alter how documents are stored.</summary>
    private static JsonSerializerOptions Freeze(JsonSerializerOptions options)
    {
        if (options.IsReadOnly)
        {
            return options;
        }

        var copy = new JsonSerializerOptions(options);
        if (copy.TypeInfoResolver is not null || JsonSerializer.IsReflectionEnabledByDefault)
        {
            copy.MakeReadOnly(populateMissingResolver: true);
        }

        // Otherwise (trimmed apps without a resolver) the copy stays open: collections must be given their JsonTypeInfo.
        return copy;
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    internal void CheckName(string? name, string what, string parameter)
    {
        if (Limits.CheckName(name, what) is { } error)
        {
            throw new ArgumentException(error.Message, parameter);
        }
    }

    internal void CheckId(string? id, string parameter)
    {
        if (Limits.CheckId(id) is { } error)
        {
            throw new ArgumentException(error.Message, parameter);
        }
    }
}
