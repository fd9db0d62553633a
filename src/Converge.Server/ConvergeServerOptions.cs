using Converge.Protocol;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.Server;

/// <summary>How acknowledged pushes survive failures of the machine.</summary>
public enum SynchronousMode
{
    /// <summary>Survives a crash or kill of the process (SQLite WAL with synchronous NORMAL). The default.</summary>
    Normal = 0,

    /// <summary>Also survives power loss: every commit is synced to disk (synchronous FULL). Slower.</summary>
    Full = 1,
}

/// <summary>A development API key: the principal it signs in as and the scopes it may read and write.</summary>
/// <param name="Name">The principal's name (the <see cref="System.Security.Claims.ClaimTypes.Name"/> claim).</param>
/// <param name="Scopes">The scopes the key grants, as scope claims; <c>team:*</c> grants every scope starting with <c>team:</c>.</param>
public sealed record ConvergeApiKey(string Name, IReadOnlyList<string> Scopes);

/// <summary>Options of the Converge sync server.</summary>
public sealed class ConvergeServerOptions
{
    private readonly Dictionary<string, CollectionRules> _collections = new(StringComparer.Ordinal);

    /// <summary>Gets or sets the path of the SQLite file that holds the documents, created when missing.</summary>
    /// <value>Required by the embedded SQLite store.</value>
    public string DatabasePath { get; set; } = "";

    /// <summary>Gets or sets how acknowledged pushes survive failures.</summary>
    /// <value>The default is <see cref="SynchronousMode.Normal"/>.</value>
    public SynchronousMode Synchronous { get; set; } = SynchronousMode.Normal;

    /// <summary>Gets or sets how far ahead of the server's clock a write's timestamp may be before the server re-stamps it.</summary>
    /// <value>The default is 60 seconds.</value>
    public TimeSpan MaxClockDrift { get; set; } = HybridClock.DefaultMaxDrift;

    /// <summary>Gets or sets the bounds every push must keep: mutations per push, document size, nesting depth, name lengths.</summary>
    /// <value>The default is <see cref="ProtocolLimits"/> with its own defaults.</value>
    public ProtocolLimits Limits { get; set; } = new();

    /// <summary>Gets or sets the largest request body the push and resolve endpoints read, in bytes; larger bodies get 413 <c>payload_too_large</c>.</summary>
    /// <value>The default is 8 MiB.</value>
    public long MaxRequestBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Gets or sets how long a request body, or a live message, may take to arrive whole; a slower one gets 408 <c>request_timeout</c> (a live connection is closed).</summary>
    /// <value>
    /// The default is 30 seconds, measured from when the server starts reading the body (for a live message, from its
    /// first byte). Unlike Kestrel's minimum data rate, which averages over the whole body, it also ends a body sent fast
    /// and then stalled. A body of <see cref="MaxRequestBytes"/> needs about 2.2 Mbit/s to make it.
    /// </value>
    public TimeSpan RequestBodyTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how many bytes of request bodies and live messages one connection may have buffered at once.</summary>
    /// <value>
    /// The default is 16 MiB. An HTTP/1.1 or live connection reads one message at a time, so this binds on HTTP/2, where
    /// one connection carries many requests. A body that would pass it gets 429 <c>too_many_requests</c>.
    /// </value>
    public long MaxBytesInFlightPerConnection { get; set; } = 16 * 1024 * 1024;

    /// <summary>Gets or sets how many bytes of request bodies and live messages one principal may have buffered at once, over all its connections.</summary>
    /// <value>The default is 32 MiB: four bodies of <see cref="MaxRequestBytes"/> at once. A body that would pass it gets 429 <c>too_many_requests</c>.</value>
    public long MaxBytesInFlightPerPrincipal { get; set; } = 32 * 1024 * 1024;

    /// <summary>Gets or sets how many bytes of request bodies and live messages the server buffers at once, over all principals.</summary>
    /// <value>The default is 256 MiB. A body that would pass it gets 429 <c>too_many_requests</c>; size it to the memory the server may spend on requests.</value>
    public long MaxBytesInFlight { get; set; } = 256 * 1024 * 1024;

    /// <summary>Gets or sets how many HTTP requests to the push, pull, conflicts and resolve endpoints one principal may have open at once; more get 429 <c>too_many_requests</c>.</summary>
    /// <value>The default is 32.</value>
    public int MaxConcurrentRequestsPerPrincipal { get; set; } = 32;

    /// <summary>Gets or sets how many live connections one principal may have open at once; more are refused with 429 <c>too_many_requests</c> before the upgrade.</summary>
    /// <value>The default is 8.</value>
    public int MaxLiveConnectionsPerPrincipal { get; set; } = 8;

    /// <summary>Gets or sets the merge rules of every collection without rules of its own.</summary>
    /// <value>The default is <see cref="CollectionRules.Default"/>: last writer wins, delete wins.</value>
    public CollectionRules DefaultRules { get; set; } = CollectionRules.Default;

    /// <summary>Gets the collections with rules of their own, set with <see cref="Collection"/>.</summary>
    public IReadOnlyDictionary<string, CollectionRules> Collections => _collections;

    /// <summary>Gets or sets how long a deleted document's tombstone is kept before compaction removes it.</summary>
    /// <value>The default is 30 days. A client whose cursor is older than the removed tombstones gets a reset.</value>
    public TimeSpan TombstoneRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Gets or sets how long a client's progress record (the last mutation id applied for one device of one principal) is kept after the device last pushed.</summary>
    /// <value>
    /// The default is 90 days. It must be at least <see cref="TombstoneRetention"/>: a device that comes back after its
    /// record was removed has its still-unanswered push applied again, so the record must outlive the time within which
    /// the server still treats the device's cursors as current.
    /// </value>
    public TimeSpan ClientRetention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>Gets or sets how far past its expiry (or before its start) a JWT is still accepted, for clocks that disagree a little.</summary>
    /// <value>
    /// The default is 30 seconds. It is set on every JWT bearer scheme whose <c>TokenValidationParameters.ClockSkew</c>
    /// was left at the library's default (5 minutes), and a live connection opened with a JWT is closed at the token's
    /// expiry plus the skew of its scheme, so the HTTP API and the live channel agree. A scheme whose skew the app set to
    /// another value keeps it.
    /// </value>
    public TimeSpan TokenClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how often the background compaction runs.</summary>
    /// <value>The default is 1 hour.</value>
    public TimeSpan CompactionInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Gets or sets the most changes one pull returns; a larger <c>limit</c> is lowered to it.</summary>
    /// <value>The default is 5,000.</value>
    public int MaxPullLimit { get; set; } = 5_000;

    /// <summary>Gets or sets the number of changes a pull without <c>limit</c> returns.</summary>
    /// <value>The default is 1,000.</value>
    public int DefaultPullLimit { get; set; } = 1_000;

    /// <summary>Gets or sets the most bytes of stored JSON one page holds: a pull page, a page of a conflict list, or the changes a live client catches up with.</summary>
    /// <value>
    /// The default is 4 MiB. A page ends before the item that would take it past this bound, so a few large documents make
    /// a short page and the client pulls the rest; a page always holds at least one item, however large.
    /// </value>
    public int MaxPageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Gets or sets the most open conflict records one document may have.</summary>
    /// <value>
    /// The default is 16. A device has at most one open record per document: its later contested edits of the document join
    /// that record. A device that would open one more record on a document that has this many gets its mutation
    /// <c>rejected</c>, with the reason, until a person resolves some.
    /// </value>
    public int MaxOpenConflictsPerDocument { get; set; } = 16;

    /// <summary>Gets or sets the most open conflict records one scope may have.</summary>
    /// <value>
    /// The default is 1,000. A mutation that would open one more record in a scope that has this many is <c>rejected</c>,
    /// with the reason, until a person resolves some. A record holds the contested values of both sides, so this bounds
    /// what waiting conflicts can store per scope.
    /// </value>
    public int MaxOpenConflictsPerScope { get; set; } = 1_000;

    /// <summary>Gets or sets how many bytes of live messages may wait to be sent to one connection.</summary>
    /// <value>
    /// The default is 1 MiB. A client that reads slower than its scopes change reaches it: its waiting changes are dropped
    /// and it is sent one <c>poke</c> per scope instead, after which it pulls. A connection's memory stays within it.
    /// </value>
    public int LiveSendQueueBytes { get; set; } = 1024 * 1024;

    /// <summary>Gets or sets the largest live <c>changes</c> message; a commit whose changes are larger is sent as a <c>poke</c>, and clients pull it.</summary>
    /// <value>The default is 256 KiB.</value>
    public int LiveMaxMessageBytes { get; set; } = 256 * 1024;

    /// <summary>Gets or sets the most scopes one live connection may follow.</summary>
    /// <value>The default is 64.</value>
    public int MaxLiveScopes { get; set; } = 64;

    /// <summary>Gets or sets how long a live connection may stay silent before the server pings it.</summary>
    /// <value>The default is 15 seconds.</value>
    public TimeSpan LiveKeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets how long the server waits for the answer to a ping before it drops the connection as dead.</summary>
    /// <value>The default is 15 seconds: a dead client is dropped within 30 seconds of its last message.</value>
    public TimeSpan LiveKeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets the development API keys: the key a client sends as <c>Authorization: Bearer &lt;key&gt;</c>, and what it grants.</summary>
    /// <value>Empty by default. Use JWT bearer authentication in production; see <c>docs/server.md</c>.</value>
    public IDictionary<string, ConvergeApiKey> ApiKeys { get; } = new Dictionary<string, ConvergeApiKey>(StringComparer.Ordinal);

    /// <summary>Gets or sets the claim type whose values name the scopes a principal may read and write.</summary>
    /// <value>The default is <c>converge:scope</c>.</value>
    public string ScopeClaimType { get; set; } = "converge:scope";

    /// <summary>Gets the authentication schemes, besides API keys and every JWT bearer scheme, whose principals the endpoints accept.</summary>
    /// <value>Empty by default.</value>
    public IList<string> AuthenticationSchemes { get; } = [];

    /// <summary>Sets the merge rules of one collection.</summary>
    /// <param name="name">The collection's name.</param>
    /// <param name="rules">Its rules.</param>
    /// <returns>These options.</returns>
    public ConvergeServerOptions Collection(string name, CollectionRules rules)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(rules);
        _collections[name] = rules;
        return this;
    }

    /// <summary>Adds a development API key.</summary>
    /// <param name="key">The secret the client sends as a bearer token. It is never logged or stored: the server keeps only its SHA-256 hash.</param>
    /// <param name="name">The principal's name: what logs show and what keys its devices' progress (<c>apikey:NAME</c>). Two keys with one name are one principal, for example while a key is rotated.</param>
    /// <param name="scopes">The scopes it grants; <c>team:*</c> grants every scope starting with <c>team:</c>.</param>
    /// <returns>These options.</returns>
    public ConvergeServerOptions AddApiKey(string key, string name, params string[] scopes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ApiKeys[key] = new ConvergeApiKey(name, scopes);
        return this;
    }

    /// <summary>Gets the rules of a collection: its own, or <see cref="DefaultRules"/>.</summary>
    /// <param name="collection">The collection's name.</param>
    /// <returns>The rules.</returns>
    public CollectionRules GetRules(string collection) =>
        _collections.TryGetValue(collection, out var rules) ? rules : DefaultRules;

    /// <summary>Checks the options and lists what is wrong.</summary>
    /// <param name="embeddedStore">Whether the server uses the built-in SQLite store, which needs <see cref="DatabasePath"/>.</param>
    internal List<string> Validate(bool embeddedStore = true)
    {
        var errors = new List<string>();
        if (embeddedStore && string.IsNullOrWhiteSpace(DatabasePath))
        {
            errors.Add("DatabasePath is required: the SQLite file that holds the documents.");
        }

        if (!Enum.IsDefined(Synchronous))
        {
            errors.Add($"Synchronous {Synchronous} is not defined.");
        }

        if (MaxClockDrift < TimeSpan.Zero)
        {
            errors.Add($"MaxClockDrift cannot be negative; it is {MaxClockDrift}.");
        }

        if (Limits is null)
        {
            errors.Add("Limits is required.");
        }
        else
        {
            Try(Limits.Validate, "Limits");
        }

        if (MaxRequestBytes < 1024)
        {
            errors.Add($"MaxRequestBytes must be at least 1024; it is {MaxRequestBytes}.");
        }

        if (RequestBodyTimeout <= TimeSpan.Zero || RequestBodyTimeout > TimeSpan.FromDays(1))
        {
            errors.Add($"RequestBodyTimeout must be positive and at most 1 day; it is {RequestBodyTimeout}.");
        }

        if (MaxBytesInFlightPerConnection < MaxRequestBytes)
        {
            errors.Add($"MaxBytesInFlightPerConnection must be at least MaxRequestBytes ({MaxRequestBytes}), or no body of that size could be read; it is {MaxBytesInFlightPerConnection}.");
        }

        if (MaxBytesInFlightPerPrincipal < MaxBytesInFlightPerConnection)
        {
            errors.Add($"MaxBytesInFlightPerPrincipal must be at least MaxBytesInFlightPerConnection ({MaxBytesInFlightPerConnection}); it is {MaxBytesInFlightPerPrincipal}.");
        }

        if (MaxBytesInFlight < MaxBytesInFlightPerPrincipal)
        {
            errors.Add($"MaxBytesInFlight must be at least MaxBytesInFlightPerPrincipal ({MaxBytesInFlightPerPrincipal}); it is {MaxBytesInFlight}.");
        }

        if (MaxConcurrentRequestsPerPrincipal < 1)
        {
            errors.Add($"MaxConcurrentRequestsPerPrincipal must be at least 1; it is {MaxConcurrentRequestsPerPrincipal}.");
        }

        if (MaxLiveConnectionsPerPrincipal < 1)
        {
            errors.Add($"MaxLiveConnectionsPerPrincipal must be at least 1; it is {MaxLiveConnectionsPerPrincipal}.");
        }

        if (DefaultRules is null)
        {
            errors.Add("DefaultRules is required.");
        }
        else
        {
            Try(DefaultRules.Validate, "DefaultRules");
        }

        foreach (var (name, rules) in _collections)
        {
            Try(rules.Validate, $"Collection '{name}'");
        }

        if (TombstoneRetention <= TimeSpan.Zero)
        {
            errors.Add($"TombstoneRetention must be positive; it is {TombstoneRetention}.");
        }

        if (ClientRetention < TombstoneRetention)
        {
            errors.Add($"ClientRetention must be at least TombstoneRetention ({TombstoneRetention}); it is {ClientRetention}.");
        }

        if (TokenClockSkew < TimeSpan.Zero || TokenClockSkew > TimeSpan.FromMinutes(10))
        {
            errors.Add($"TokenClockSkew must be between 0 and 10 minutes; it is {TokenClockSkew}.");
        }

        if (CompactionInterval <= TimeSpan.Zero || CompactionInterval > TimeSpan.FromDays(49))
        {
            errors.Add($"CompactionInterval must be positive and at most 49 days; it is {CompactionInterval}.");
        }

        if (MaxPullLimit < 1)
        {
            errors.Add($"MaxPullLimit must be at least 1; it is {MaxPullLimit}.");
        }

        if (DefaultPullLimit < 1 || DefaultPullLimit > MaxPullLimit)
        {
            errors.Add($"DefaultPullLimit must be between 1 and MaxPullLimit ({MaxPullLimit}); it is {DefaultPullLimit}.");
        }

        if (MaxPageBytes < 64 * 1024)
        {
            errors.Add($"MaxPageBytes must be at least 65536; it is {MaxPageBytes}.");
        }

        if (MaxOpenConflictsPerDocument < 1 || MaxOpenConflictsPerScope < 1)
        {
            errors.Add($"MaxOpenConflictsPerDocument and MaxOpenConflictsPerScope must be at least 1; they are {MaxOpenConflictsPerDocument} and {MaxOpenConflictsPerScope}.");
        }

        if (LiveSendQueueBytes < 16 * 1024)
        {
            errors.Add($"LiveSendQueueBytes must be at least 16384; it is {LiveSendQueueBytes}.");
        }

        if (LiveMaxMessageBytes < 1024 || LiveMaxMessageBytes > LiveSendQueueBytes)
        {
            errors.Add($"LiveMaxMessageBytes must be between 1024 and LiveSendQueueBytes ({LiveSendQueueBytes}); it is {LiveMaxMessageBytes}.");
        }

        if (MaxLiveScopes < 1)
        {
            errors.Add($"MaxLiveScopes must be at least 1; it is {MaxLiveScopes}.");
        }

        if (LiveKeepAliveInterval <= TimeSpan.Zero || LiveKeepAliveTimeout <= TimeSpan.Zero)
        {
            errors.Add($"LiveKeepAliveInterval and LiveKeepAliveTimeout must be positive; they are {LiveKeepAliveInterval} and {LiveKeepAliveTimeout}.");
        }

        foreach (var (key, identity) in ApiKeys)
        {
            if (string.IsNullOrWhiteSpace(key))
            {
                errors.Add("An API key cannot be empty.");
            }
            else if (key.Any(char.IsWhiteSpace))
            {
                // The message never quotes a key: it is a secret.
                errors.Add($"An API key cannot contain white space (the key of '{identity?.Name}').");
            }

            if (identity is null || string.IsNullOrWhiteSpace(identity.Name))
            {
                errors.Add("Every API key needs a principal name.");
            }
            else if (string.Equals(identity.Name, key, StringComparison.Ordinal))
            {
                errors.Add("An API key is named with its own secret: give it a name that is not the key, since the name is logged and stored.");
            }
            else if (identity.Scopes is null || identity.Scopes.Any(string.IsNullOrWhiteSpace))
            {
                errors.Add($"The scopes of API key '{identity.Name}' cannot be null or empty.");
            }
        }

        if (string.IsNullOrWhiteSpace(ScopeClaimType))
        {
            errors.Add("ScopeClaimType is required.");
        }

        return errors;

        void Try(Action validate, string what)
        {
            try
            {
                validate();
            }
            catch (ArgumentException e)
            {
                errors.Add($"{what}: {e.Message}");
            }
        }
    }
}
