using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Converge.Protocol.Messages;

/// <summary>The bounds every message must keep, and the checks that enforce them before anything is applied.</summary>
/// <remarks>A message outside the bounds is refused whole, with one error naming the first problem, and changes nothing.</remarks>
public sealed record ProtocolLimits
{
    /// <summary>The protocol version: the <c>v1</c> in every path.</summary>
    public const int Version = 1;

    /// <summary>The deepest nesting the JSON readers accept in any message: the document depth bound plus the envelope.</summary>
    public const int MaxMessageDepth = 64;

    /// <summary>Gets the most mutations one push may carry.</summary>
    /// <value>The default is 1,000.</value>
    public int MaxMutationsPerPush { get; init; } = 1_000;

    /// <summary>Gets the largest serialized size of one mutation's field values.</summary>
    /// <value>The default is 256 KiB.</value>
    public int MaxDocumentBytes { get; init; } = 256 * 1024;

    /// <summary>Gets the deepest nesting of arrays and objects inside one field value.</summary>
    /// <value>The default is 32.</value>
    public int MaxValueDepth { get; init; } = 32;

    /// <summary>Gets the longest document id, in characters.</summary>
    /// <value>The default is 256.</value>
    public int MaxIdLength { get; init; } = 256;

    /// <summary>Gets the longest scope, collection or field name, in characters.</summary>
    /// <value>The default is 128.</value>
    public int MaxNameLength { get; init; } = 128;

    /// <summary>Gets the most fields one mutation may write.</summary>
    /// <value>The default is 512.</value>
    public int MaxFieldsPerMutation { get; init; } = 512;

    /// <summary>Gets the most fields, removed ones included, one document may hold.</summary>
    /// <value>The default is 1,024.</value>
    public int MaxFieldsPerDocument { get; init; } = 1_024;

    /// <summary>Gets the largest size of a whole document's field names and values.</summary>
    /// <value>The default is 1 MiB.</value>
    public int MaxDocumentStateBytes { get; init; } = 1024 * 1024;

    /// <summary>Checks that the limits themselves are sane.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A limit is not positive, or the value depth leaves no room for the envelope.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxMutationsPerPush, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDocumentBytes, 64);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxValueDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxValueDepth, MaxMessageDepth - 8);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxIdLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNameLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFieldsPerMutation, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFieldsPerDocument, MaxFieldsPerMutation);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDocumentStateBytes, MaxDocumentBytes);
    }

    /// <summary>Checks a document's state after a write: its field count and the size of its names and values.</summary>
    /// <param name="state">The state.</param>
    /// <returns><see langword="null"/> when within the limits; otherwise a <see cref="ProtocolErrorCodes.DocumentTooLarge"/> problem.</returns>
    public ProtocolError? CheckState(Documents.DocumentState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Fields.Count > MaxFieldsPerDocument)
        {
            return new ProtocolError(ProtocolErrorCodes.DocumentTooLarge, $"The document would hold {state.Fields.Count} fields (removed ones included); at most {MaxFieldsPerDocument} are allowed.");
        }

        long bytes = 0;
        foreach (var (name, field) in state.Fields)
        {
            bytes += name.Length + (field.Removed ? 0 : System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(field.Value).Length);
            if (bytes > MaxDocumentStateBytes)
            {
                return new ProtocolError(ProtocolErrorCodes.DocumentTooLarge, $"The document would exceed {MaxDocumentStateBytes} bytes.");
            }
        }

        return null;
    }

    /// <summary>Checks a push request against the limits and the protocol's rules.</summary>
    /// <param name="request">The request.</param>
    /// <returns><see langword="null"/> when it is valid; otherwise the first problem, with its error code.</returns>
    public ProtocolError? Check(PushRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!ReplicaId.TryParse(request.ClientId, out _))
        {
            return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'client' must be 16 lowercase hex digits.");
        }

        if (request.Mutations is null || request.Mutations.Count == 0)
        {
            return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'mutations' must hold at least one mutation.");
        }

        if (request.Mutations.Count > MaxMutationsPerPush)
        {
            return new ProtocolError(ProtocolErrorCodes.BatchTooLarge, $"A push may carry at most {MaxMutationsPerPush} mutations; this one has {request.Mutations.Count}.");
        }

        long previous = 0;
        for (var i = 0; i < request.Mutations.Count; i++)
        {
            var m = request.Mutations[i];
            if (m is null)
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"Mutation {i} is null.");
            }

            if (m.Id <= previous)
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"Mutation ids must be positive and increasing; mutation {i} has {m.Id} after {previous}.");
            }

            previous = m.Id;
            if (Check(m) is { } error)
            {
                return error with { Message = $"Mutation {m.Id}: {error.Message}" };
            }
        }

        return null;
    }

    /// <summary>Checks one mutation.</summary>
    /// <param name="mutation">The mutation.</param>
    /// <returns><see langword="null"/> when it is valid; otherwise the problem.</returns>
    public ProtocolError? Check(Mutation mutation)
    {
        ArgumentNullException.ThrowIfNull(mutation);
        if (CheckScope(mutation.Scope) is { } e1)
        {
            return e1;
        }

        if (CheckName(mutation.Collection, "collection") is { } e2)
        {
            return e2;
        }

        if (CheckId(mutation.DocumentId) is { } e5)
        {
            return e5;
        }

        if (!Enum.IsDefined(mutation.Kind))
        {
            return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'op' must be put, patch, delete, increment or resolve.");
        }

        if (mutation.BaseRevision < 0)
        {
            return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'base' must not be negative.");
        }

        var fields = mutation.Fields?.Count ?? 0;
        var removed = mutation.Remove?.Count ?? 0;
        switch (mutation.Kind)
        {
            case MutationKind.Delete when fields + removed > 0:
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "A delete carries no fields.");
            case MutationKind.Increment when fields == 0 || removed > 0:
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "An increment carries at least one field and removes none.");
            case MutationKind.Patch when fields + removed == 0:
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "A patch writes or removes at least one field.");
            case MutationKind.Resolve when string.IsNullOrEmpty(mutation.ConflictId) || mutation.ConflictId.Length > MaxIdLength || HasHiddenCharacters(mutation.ConflictId):
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "A resolve names its conflict in 'conflict'.");
            case not MutationKind.Resolve when mutation.ConflictId is not null:
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "Only a resolve names a conflict.");
        }

        if (fields + removed > MaxFieldsPerMutation)
        {
            return new ProtocolError(ProtocolErrorCodes.DocumentTooLarge, $"A mutation may write at most {MaxFieldsPerMutation} fields.");
        }

        long bytes = 0;
        if (CheckValues(mutation.Fields, "Field", ref bytes) is { } e3)
        {
            return e3;
        }

        // Base values travel into conflict records and every device pulls them: they are bounded like the values,
        // and only the fields the mutation writes or removes may have one.
        long baseBytes = 0;
        if (CheckValues(mutation.BaseValues, "Base value of field", ref baseBytes) is { } e6)
        {
            return e6;
        }

        foreach (var name in (mutation.BaseValues ?? Empty).Keys)
        {
            if (!(mutation.Fields?.ContainsKey(name) ?? false) && !(mutation.Remove?.Contains(name) ?? false))
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"'baseValues' names field '{name}', which the mutation neither writes nor removes.");
            }
        }

        foreach (var name in mutation.Remove ?? [])
        {
            if (CheckName(name, "field name") is { } e4)
            {
                return e4;
            }

            if (mutation.Fields is not null && mutation.Fields.ContainsKey(name))
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"Field '{name}' is both written and removed.");
            }
        }

        return null;
    }

    private ProtocolError? CheckValues(IReadOnlyDictionary<string, JsonElement>? values, string what, ref long bytes)
    {
        foreach (var (name, value) in values ?? Empty)
        {
            if (CheckName(name, "field name") is { } error)
            {
                return error;
            }

            if (value.ValueKind == JsonValueKind.Undefined)
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"{what} '{name}' has no value.");
            }

            if (Depth(value) > MaxValueDepth)
            {
                return new ProtocolError(ProtocolErrorCodes.TooDeep, $"{what} '{name}' nests deeper than {MaxValueDepth} levels.");
            }

            bytes += System.Text.Encoding.UTF8.GetByteCount(name) + System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(value).Length;
            if (bytes > MaxDocumentBytes)
            {
                return new ProtocolError(ProtocolErrorCodes.DocumentTooLarge, $"The mutation's {(what == "Field" ? "values" : "base values")} exceed {MaxDocumentBytes} bytes.");
            }
        }

        return null;
    }

    /// <summary>The characters a scope name may hold, as said in errors and documentation.</summary>
    private const string ScopeCharacters = "ASCII letters, digits and - _ . ~ : @ / + = |";

    /// <summary>Checks a scope name: 1 to <see cref="MaxNameLength"/> characters, each an ASCII letter or digit or one of <c>- _ . ~ : @ / + = |</c>.</summary>
    /// <param name="scope">The scope.</param>
    /// <returns><see langword="null"/> when valid; otherwise the problem.</returns>
    /// <remarks>
    /// A scope is the unit of access: its name is compared with grants, shown to operators and written to logs. A safe set
    /// of visible ASCII characters means no two scopes can look alike (no invisible, bidi or lookalike characters) and every
    /// one reads the same in a URL, a log and a terminal. It holds <c>user:alice</c>, <c>team:42</c>,
    /// <c>org:acme/sales</c>, <c>user:alice@example.com</c> and the subjects of common identity providers
    /// (<c>user:auth0|5f7c…</c>). <c>*</c> is left out: it ends a wildcard grant.
    /// </remarks>
    public ProtocolError? CheckScope(string? scope)
    {
        if (string.IsNullOrEmpty(scope) || scope.Length > MaxNameLength)
        {
            return BadScope();
        }

        foreach (var c in scope)
        {
            if (!IsScopeCharacter(c))
            {
                return BadScope();
            }
        }

        return null;
    }

    /// <summary>Checks a document id: 1 to <see cref="MaxIdLength"/> characters, none of them a control, invisible (format), bidi or line-separator character, nor a lone surrogate.</summary>
    /// <param name="id">The id.</param>
    /// <returns><see langword="null"/> when valid; otherwise the problem.</returns>
    public ProtocolError? CheckId(string? id) =>
        string.IsNullOrEmpty(id) || id.Length > MaxIdLength || HasHiddenCharacters(id)
            ? new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"A document id ('doc') must be 1 to {MaxIdLength} characters, {HiddenCharacters}.")
            : null;

    /// <summary>Checks a collection or field name (or, for compatibility, any name): 1 to <see cref="MaxNameLength"/> characters, none of them a control, invisible (format), bidi or line-separator character, nor a lone surrogate.</summary>
    /// <param name="name">The name.</param>
    /// <param name="what">What the name is, for the message.</param>
    /// <returns><see langword="null"/> when valid; otherwise the problem.</returns>
    /// <remarks>Other Unicode (letters of any script, spaces, emoji) is allowed. A scope obeys the narrower <see cref="CheckScope"/>.</remarks>
    public ProtocolError? CheckName(string? name, string what) =>
        string.IsNullOrEmpty(name) || name.Length > MaxNameLength || HasHiddenCharacters(name)
            ? new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"A {what} must be 1 to {MaxNameLength} characters, {HiddenCharacters}.")
            : null;

    private const string HiddenCharacters = "with no control, invisible, bidi or line-separator characters and no lone surrogates";

    private static readonly IReadOnlyDictionary<string, JsonElement> Empty = new Dictionary<string, JsonElement>();

    private ProtocolError BadScope() =>
        new(ProtocolErrorCodes.InvalidMessage, $"A scope must be 1 to {MaxNameLength} characters of {ScopeCharacters}.");

    private static bool IsScopeCharacter(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~' or ':' or '@' or '/' or '+' or '=' or '|';

    /// <summary>Tells text holding a character that hides, reorders or breaks text: Unicode categories Cc, Cf, Zl and Zp, or a lone surrogate.</summary>
    private static bool HasHiddenCharacters(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is >= ' ' and < '\u007F')
            {
                continue;
            }

            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var length) != System.Buffers.OperationStatus.Done)
            {
                return true;
            }

            if (Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                return true;
            }

            i += length - 1;
        }

        return false;
    }

    private static int Depth(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                var deepest = 0;
                foreach (var property in value.EnumerateObject())
                {
                    deepest = Math.Max(deepest, Depth(property.Value));
                }

                return deepest + 1;
            case JsonValueKind.Array:
                deepest = 0;
                foreach (var item in value.EnumerateArray())
                {
                    deepest = Math.Max(deepest, Depth(item));
                }

                return deepest + 1;
            default:
                return 0;
        }
    }
}

/// <summary>A protocol error: a stable code and a message for people.</summary>
/// <param name="Code">One of <see cref="ProtocolErrorCodes"/>.</param>
/// <param name="Message">What is wrong.</param>
public sealed record ProtocolError(string Code, string Message);

/// <summary>The stable error codes of the protocol, carried in the <c>code</c> member of every error response.</summary>
public static class ProtocolErrorCodes
{
    /// <summary>The body is not JSON, or not the message the endpoint expects (HTTP 400).</summary>
    public const string Malformed = "malformed";

    /// <summary>The message parses but breaks a rule of the protocol (HTTP 400).</summary>
    public const string InvalidMessage = "invalid_message";

    /// <summary>A value nests too deep (HTTP 400).</summary>
    public const string TooDeep = "too_deep";

    /// <summary>One mutation's values are too large (HTTP 413).</summary>
    public const string DocumentTooLarge = "document_too_large";

    /// <summary>A push carries too many mutations (HTTP 413).</summary>
    public const string BatchTooLarge = "batch_too_large";

    /// <summary>The body is larger than the server accepts (HTTP 413).</summary>
    public const string PayloadTooLarge = "payload_too_large";

    /// <summary>No credentials, or credentials the server does not accept (HTTP 401).</summary>
    public const string Unauthenticated = "unauthenticated";

    /// <summary>The caller may not read or write a scope it named (HTTP 403); nothing is said about what the scope holds.</summary>
    public const string ScopeForbidden = "scope_forbidden";

    /// <summary>
    /// The push reuses mutation ids the server already applied for this client, with other timestamps: the client's
    /// store was restored from a backup or copied to another device (HTTP 409). Nothing was applied; the client takes a
    /// new replica id, numbers its outbox again from 1, and pushes again.
    /// </summary>
    public const string ClientIdReused = "client_id_reused";

    /// <summary>The conflict does not exist in any scope the caller may see (HTTP 404).</summary>
    public const string NotFound = "not_found";

    /// <summary>
    /// The caller has too much in flight: too many bytes of requests being read, too many requests or live connections
    /// open at once (HTTP 429, with <c>Retry-After</c>). Nothing was applied; send again after the delay.
    /// </summary>
    public const string TooManyRequests = "too_many_requests";

    /// <summary>The body did not arrive whole within the server's time bound (HTTP 408). Nothing was applied; send again.</summary>
    public const string RequestTimeout = "request_timeout";

    /// <summary>The client's clock is too far ahead and the server will not take the client's clock reading (informational, in results).</summary>
    public const string ClockDrift = "clock_drift";
}
