using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Client.Storage;
using Converge.Client.Sync;
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
public sealed class ConvergeClient : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly SyncHttp? _http;
    private readonly HashSet<string> _scopes;
    private readonly ClientIdentity _identity;
    private readonly TimeProvider _time;
    private long _lastSyncedTicks = -1;
    private int _disposed;

    private ConvergeClient(ConvergeClientOptions options, ClientStore store, ILoggerFactory loggerFactory)
    {
        _logger = loggerFactory.CreateLogger("Converge.Client");
        Store = store;
        Limits = options.Limits;
        DocumentOptions = Freeze(options.DocumentSerializerOptions);
        Scopes = [.. options.Scopes];
        _scopes = new HashSet<string>(Scopes, StringComparer.Ordinal);
        _time = options.TimeProvider;
        _identity = new ClientIdentity(store, options.TimeProvider, _logger);
        Changes = new ChangeHub<StoreChange>(_logger);
        ConflictChanges = new ChangeHub<ConflictChangedEventArgs>(_logger);
        if (options.ServerUrl is not null)
        {
            _http = new SyncHttp(options.ServerUrl, options.BasePath, options.HttpMessageHandler, options.RequestTimeout, options.AccessTokenProvider);
        }

        // The work is done by parts that each hold their own state; the client hands them what they share.
        Writes = new LocalWrites(this, _identity);
        Pages = new PageApplier(this, _identity, _logger);
        Engine = new SyncEngine(
            this,
            _identity,
            _http,
            new OutboxPusher(store, _identity, Changes, ConflictChanges, options.PushBatchSize, _logger),
            new ScopePuller(store, _identity, Pages, options.PullPageSize, _logger),
            Pages,
            options.TimeProvider,
            _logger);
        Conflicts = new ConflictInbox(this);
        Live = new LiveSync(this, Engine, _http, options, loggerFactory.CreateLogger("Converge.Client.Live"));
    }

    /// <summary>Gets this client's replica id: 16 lowercase hex digits, made when its store was created and kept in it.</summary>
    /// <value>
    /// It changes once in a store's life in one case: when the server answers that the client reuses mutation ids it
    /// already applied (the store was restored from a backup or copied to another device), the client takes a new id
    /// and renumbers its outbox, so the copies go on as two replicas.
    /// </value>
    public string ClientId => _identity.ClientId;

    /// <summary>Gets the scopes this client holds and syncs; the first is the default scope.</summary>
    public IReadOnlyList<string> Scopes { get; }

    /// <summary>Gets the default scope of collections: the first of <see cref="ConvergeClientOptions.Scopes"/>.</summary>
    public string DefaultScope => Scopes[0];

    /// <summary>Gets the inbox of conflicts left for a person to resolve.</summary>
    public ConflictInbox Conflicts { get; }

    /// <summary>Gets the live connection: <see cref="LiveSync.Start"/> it to receive other devices' changes as they commit and push local writes at once.</summary>
    public LiveSync Live { get; }

    /// <summary>Raised when <see cref="Status"/> changes, on the thread running the sync round.</summary>
    public event EventHandler<SyncStatusChangedEventArgs>? StatusChanged
    {
        add => Engine.StatusChanged += value;
        remove => Engine.StatusChanged -= value;
    }

    /// <summary>Gets the sync status: the outcome of the last round, or <see cref="SyncStatus.Syncing"/> while one runs.</summary>
    /// <value><see cref="SyncStatus.Offline"/> until the first round succeeds. The status never blocks local writes.</value>
    public SyncStatus Status => Engine.Status;

    /// <summary>Gets the failure of the last sync round; <see langword="null"/> once a round succeeds.</summary>
    public Exception? LastError => Engine.LastError;

    /// <summary>Gets when this client last exchanged with the server successfully, as <see cref="Synced"/> reports it.</summary>
    /// <value>
    /// <see langword="null"/> until the first success since the client was opened: the time is kept in memory, not in the
    /// store. It comes from <see cref="ConvergeClientOptions.TimeProvider"/>.
    /// </value>
    public DateTimeOffset? LastSyncedAt
    {
        get
        {
            var ticks = Interlocked.Read(ref _lastSyncedTicks);
            return ticks < 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>
    /// Raised after the client exchanged with the server successfully: a sync round ended, the live connection pushed
    /// local writes, or it applied a change from the server. <see cref="LastSyncedAt"/> tells when.
    /// </summary>
    /// <remarks>Raised on the thread that did the exchange. A screen showing "last synced" listens to it instead of polling.</remarks>
    public event EventHandler? Synced;

    /// <summary>
    /// Raised when the number of local writes waiting for the server may have changed: a local write (or a conflict's
    /// resolution) entered the outbox, or the server answered pushed writes and they left it.
    /// </summary>
    /// <remarks>
    /// Raised on the thread that committed the change, after the commit; read the count with
    /// <see cref="GetPendingCountAsync"/>. A screen showing the pending writes listens to it instead of polling.
    /// </remarks>
    public event EventHandler? PendingChanged;

    /// <summary>Runs one sync round: pushes the outbox, then pulls every scope to the end.</summary>
    /// <param name="progress">Receives progress after each push batch and each pulled page.</param>
    /// <param name="cancellationToken">Cancels the round; what was already acknowledged or applied stays.</param>
    /// <returns>What the round did.</returns>
    /// <remarks>
    /// <para>
    /// Rounds never overlap: a call made while a round runs waits for it to end and then runs a round of its own, so a
    /// call always pushes the writes made before it.
    /// </para>
    /// <para>
    /// Every step is durable on its own: a pushed batch leaves the outbox when the server answers, and each pulled page
    /// is applied with its cursor in one transaction, so a round cut short (a crash, a lost connection) resumes where it
    /// stopped. The server applies each mutation id once, so a batch sent again is harmless.
    /// </para>
    /// <para>
    /// A scope the server refuses (403 <c>scope_forbidden</c>) does not fail the round: its writes are set aside in the
    /// outbox and sent again next round, the other scopes sync, and the report lists it in
    /// <see cref="SyncReport.ForbiddenScopes"/>, with <see cref="Status"/> <see cref="SyncStatus.Error"/>. When the server
    /// answers that this client reuses mutation ids (its store was restored or copied), the client takes a new
    /// <see cref="ClientId"/>, renumbers its outbox and pushes again in the same round.
    /// </para>
    /// </remarks>
    /// <exception cref="InvalidOperationException">The client has no <see cref="ConvergeClientOptions.ServerUrl"/>.</exception>
    /// <exception cref="HttpRequestException">The server cannot be reached; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="TimeoutException">A request timed out; <see cref="Status"/> is <see cref="SyncStatus.Offline"/>.</exception>
    /// <exception cref="ConvergeSyncException">The server answered with an error (other than refusing some scopes) or broke the protocol; <see cref="Status"/> is <see cref="SyncStatus.Error"/>.</exception>
    public async Task<SyncReport> SyncAsync(IProgress<SyncProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return await Engine.SyncAsync(progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gets whether an exception says the server could not be reached: no connection, a timeout, a dropped connection.</summary>
    /// <param name="exception">An exception thrown by <see cref="SyncAsync"/>.</param>
    /// <returns>
    /// <see langword="true"/> for a network failure, after which <see cref="Status"/> is <see cref="SyncStatus.Offline"/>
    /// and the same round may succeed later unchanged; <see langword="false"/> for any other failure, such as the server's
    /// refusal (<see cref="ConvergeSyncException"/>).
    /// </returns>
    public static bool IsNetworkFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception is HttpRequestException or TimeoutException or SocketException or IOException;
    }

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
        if (!HasScope(scope))
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

    /// <summary>Commits many local writes, across collections and scopes, in one transaction: each its own outbox mutation, their change events raised after the commit.</summary>
    /// <param name="build">Adds the writes to the batch, such as <c>b =&gt; b.Put(todos, "t1", todo).Delete(notes, "n1")</c>; it runs before the transaction starts.</param>
    /// <param name="cancellationToken">Cancels before the transaction starts.</param>
    /// <returns>The number of writes committed: a delete of a document already deleted writes nothing.</returns>
    /// <remarks>
    /// One transaction for many writes costs far less than a transaction per write: use it for imports and for changes
    /// that belong together. The batch commits whole or not at all.
    /// </remarks>
    /// <exception cref="ArgumentException">A write is invalid (<paramref name="build"/> throws it); nothing is written.</exception>
    /// <exception cref="InvalidOperationException">A write does not fit the stored documents, such as a patch of a deleted document; nothing is written.</exception>
    public async Task<int> WriteBatchAsync(Action<WriteBatch> build, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(build);
        ThrowIfDisposed();
        var batch = new WriteBatch(this);
        build(batch);
        return await Writes.WriteBatchAsync(batch.Writes, cancellationToken).ConfigureAwait(false);
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
        await Engine.CloseAsync(() =>
        {
            Changes.Complete();
            ConflictChanges.Complete();
            _http?.Dispose();
            Store.Dispose();
            Log.Closed(_logger, ClientId);
        }).ConfigureAwait(false);
    }

    internal ClientStore Store { get; }

    internal ProtocolLimits Limits { get; }

    internal JsonSerializerOptions DocumentOptions { get; }

    internal ChangeHub<StoreChange> Changes { get; }

    internal ChangeHub<ConflictChangedEventArgs> ConflictChanges { get; }

    internal ILogger Logger => _logger;

    /// <summary>Raises <see cref="PendingChanged"/>.</summary>
    internal void RaisePendingChanged() => Events.Raise(PendingChanged, this, _logger);

    /// <summary>Records a successful exchange with the server and raises <see cref="Synced"/>.</summary>
    internal void RaiseSynced()
    {
        Interlocked.Exchange(ref _lastSyncedTicks, _time.GetUtcNow().UtcTicks);
        Events.Raise(Synced, this, _logger);
    }

    /// <summary>Gets the local writes: documents' new values with their outbox mutations.</summary>
    internal LocalWrites Writes { get; }

    /// <summary>Gets what applies the server's changes to the store.</summary>
    internal PageApplier Pages { get; }

    /// <summary>Gets what runs sync rounds and the live channel's steps, one at a time.</summary>
    internal SyncEngine Engine { get; }

    /// <summary>Whether the scope is one of this client's.</summary>
    internal bool HasScope(string scope) => _scopes.Contains(scope);

    /// <summary>Throws unless the client can sync: not disposed, and with a server.</summary>
    internal void CheckCanSync()
    {
        ThrowIfDisposed();
        if (_http is null)
        {
            throw new InvalidOperationException("This client has no ServerUrl: it works locally only.");
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
        if (copy.TypeInfoResolver is not null)
        {
            copy.MakeReadOnly();
        }
        else if (JsonSerializer.IsReflectionEnabledByDefault)
        {
            MakeReadOnlyWithReflection(copy);
        }

        // Otherwise (trimmed apps without a resolver) the copy stays open: collections must be given their JsonTypeInfo.
        return copy;
    }

    /// <summary>Locks options that have no resolver, giving them the reflection-based one.</summary>
    /// <remarks>
    /// Called only when reflection-based serialization is on. Trimmed and native AOT apps turn it off by default, and
    /// the trimmer then removes this call; an app that turns it back on takes on reflection's limits knowingly.
    /// </remarks>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Only reached when reflection-based serialization is enabled, which trimmed apps disable by default.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Only reached when reflection-based serialization is enabled, which native AOT apps disable by default.")]
    private static void MakeReadOnlyWithReflection(JsonSerializerOptions options) => options.MakeReadOnly(populateMissingResolver: true);

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
