using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Converge.Server.Authentication;
using Converge.Server.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Http;

/// <summary>The handlers of the HTTP API v1: HTTP in and out, validation and access; the engine does the rest.</summary>
internal sealed class ConvergeEndpoints(SyncEngine engine, IScopeAuthorizer authorizer, ConvergeServerOptions options, RequestLimits limits, ILogger<ConvergeEndpoints> logger)
{
    private const string JsonContentType = "application/json; charset=utf-8";

    /// <summary>The open conflicts one page of <c>GET /v1/conflicts</c> holds without a <c>limit</c>.</summary>
    internal const int DefaultConflictLimit = 100;

    /// <summary>The most open conflicts one page of <c>GET /v1/conflicts</c> holds; a larger <c>limit</c> is lowered to it.</summary>
    internal const int MaxConflictLimit = 1_000;

    // The same words whether the conflict does not exist or lives in a scope the caller cannot see.
    private const string ConflictNotFound = "No conflict with this id is visible to the caller.";

    public async Task PushAsync(HttpContext context)
    {
        if (!PrincipalIdentity.TryGetKey(context.User, out _))
        {
            await RefuseUnidentifiedAsync(context).ConfigureAwait(false);
            return;
        }

        var (request, error) = await RequestBody.ReadAsync(context, limits, PushReader.Read).ConfigureAwait(false);
        if (error is null && options.Limits.Check(request!) is { } invalid)
        {
            error = invalid;
        }

        if (error is not null)
        {
            await RefuseAsync(context, error).ConfigureAwait(false);
            return;
        }

        var (response, refused, forbidden) = await ApplyPushAsync(context.User, request!, context.RequestAborted).ConfigureAwait(false);
        if (forbidden is not null)
        {
            await ForbidAsync(context, forbidden).ConfigureAwait(false);
        }
        else if (refused is not null)
        {
            await RefuseAsync(context, refused).ConfigureAwait(false);
        }
        else
        {
            await WriteJsonAsync(context, response!, ProtocolJson.PushResponse).ConfigureAwait(false);
        }
    }

    /// <summary>Applies a push already checked against the limits, for the HTTP endpoint and the live channel alike.</summary>
    /// <returns>The response; or the first scope the caller may not write (nothing applied); or a refusal (nothing applied).</returns>
    internal async Task<(PushResponse? Response, ProtocolError? Refused, string? Forbidden)> ApplyPushAsync(ClaimsPrincipal user, PushRequest request, CancellationToken cancellationToken)
    {
        if (!PrincipalIdentity.TryGetKey(user, out var principal))
        {
            return (null, new ProtocolError(ProtocolErrorCodes.Unauthenticated, PrincipalIdentity.NoSubject), null);
        }

        // Every scope first: a push with one forbidden mutation applies nothing.
        string? previous = null;
        HashSet<string>? checkedScopes = null;
        foreach (var mutation in request.Mutations)
        {
            var scope = mutation.Scope;
            if (scope == previous || checkedScopes?.Contains(scope) == true)
            {
                continue;
            }

            if (!await authorizer.IsAllowedAsync(user, scope, ScopeAccess.Write, cancellationToken).ConfigureAwait(false))
            {
                return (null, null, scope);
            }

            (checkedScopes ??= new HashSet<string>(StringComparer.Ordinal)).Add(scope);
            previous = scope;
        }

        try
        {
            return (await engine.PushAsync(request, principal, PrincipalIdentity.LegacyKeys(user), cancellationToken).ConfigureAwait(false), null, null);
        }
        catch (ClientIdReusedException e)
        {
            return (null, new ProtocolError(ProtocolErrorCodes.ClientIdReused, e.Message), null);
        }
    }

    public async Task PullAsync(HttpContext context)
    {
        if (!PrincipalIdentity.TryGetKey(context.User, out _))
        {
            await RefuseUnidentifiedAsync(context).ConfigureAwait(false);
            return;
        }

        var query = context.Request.Query;
        var (scope, badScope) = ReadScope(context);
        if (badScope is not null)
        {
            await RefuseAsync(context, badScope).ConfigureAwait(false);
            return;
        }

        long after = 0;
        if (query.TryGetValue("after", out var afterText)
            && (afterText.Count != 1 || !long.TryParse(afterText[0], NumberStyles.None, CultureInfo.InvariantCulture, out after)))
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'after' must be a cursor: 0, or the cursor of a previous pull.")).ConfigureAwait(false);
            return;
        }

        var limit = options.DefaultPullLimit;
        if (query.TryGetValue("limit", out var limitText)
            && (limitText.Count != 1 || !int.TryParse(limitText[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"'limit' must be an integer from 1 to {options.MaxPullLimit}.")).ConfigureAwait(false);
            return;
        }

        if (!await IsAllowedAsync(context, scope!, ScopeAccess.Read).ConfigureAwait(false))
        {
            await ForbidAsync(context, scope!).ConfigureAwait(false);
            return;
        }

        var page = await engine.PullAsync(scope!, after, Math.Min(limit, options.MaxPullLimit), context.RequestAborted).ConfigureAwait(false);
        context.Response.ContentType = JsonContentType;
        context.Response.Headers.CacheControl = "no-store";
        await page.WriteAsync(context.Response.BodyWriter, context.RequestAborted).ConfigureAwait(false);
    }

    public async Task ListConflictsAsync(HttpContext context)
    {
        if (!PrincipalIdentity.TryGetKey(context.User, out _))
        {
            await RefuseUnidentifiedAsync(context).ConfigureAwait(false);
            return;
        }

        var (scope, badScope) = ReadScope(context);
        if (badScope is not null)
        {
            await RefuseAsync(context, badScope).ConfigureAwait(false);
            return;
        }

        var query = context.Request.Query;
        long after = 0;
        if (query.TryGetValue("after", out var afterText)
            && (afterText.Count != 1 || !long.TryParse(afterText[0], NumberStyles.None, CultureInfo.InvariantCulture, out after)))
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'after' must be 0 or the 'rev' of the last conflict of the previous page.")).ConfigureAwait(false);
            return;
        }

        var limit = DefaultConflictLimit;
        if (query.TryGetValue("limit", out var limitText)
            && (limitText.Count != 1 || !int.TryParse(limitText[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"'limit' must be an integer from 1 to {MaxConflictLimit}.")).ConfigureAwait(false);
            return;
        }

        if (!await IsAllowedAsync(context, scope!, ScopeAccess.Read).ConfigureAwait(false))
        {
            await ForbidAsync(context, scope!).ConfigureAwait(false);
            return;
        }

        limit = Math.Min(limit, MaxConflictLimit);
        var page = await engine.GetOpenConflictsAsync(scope!, after, limit, context.RequestAborted).ConfigureAwait(false);
        if (page.HasMore)
        {
            // The body stays the list it always was; where the next page starts is a link (RFC 8288).
            var next = $"{context.Request.PathBase}{context.Request.Path}?scope={Uri.EscapeDataString(scope!)}&after={page.Conflicts[^1].Revision.ToString(CultureInfo.InvariantCulture)}&limit={limit.ToString(CultureInfo.InvariantCulture)}";
            context.Response.Headers.Link = $"<{next}>; rel=\"next\"";
        }

        await WriteJsonAsync(context, page.Conflicts, ProtocolJson.ConflictRecords).ConfigureAwait(false);
    }

    public async Task ResolveAsync(HttpContext context)
    {
        if (!PrincipalIdentity.TryGetKey(context.User, out _))
        {
            await RefuseUnidentifiedAsync(context).ConfigureAwait(false);
            return;
        }

        var (request, error) = await RequestBody.ReadAsync(context, limits, ResolveReader.Read).ConfigureAwait(false);
        if (error is not null)
        {
            await RefuseAsync(context, error).ConfigureAwait(false);
            return;
        }

        ResolveChoice choice;
        switch (request!.Choice)
        {
            case "server":
                choice = ResolveChoice.Server;
                break;
            case "client":
                choice = ResolveChoice.Client;
                break;
            case "edited":
                choice = ResolveChoice.Edited;
                break;
            default:
                await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'choice' must be server, client or edited.")).ConfigureAwait(false);
                return;
        }

        if (choice != ResolveChoice.Edited && request.Fields is { Count: > 0 })
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.InvalidMessage, "Only an edited resolution carries 'fields'.")).ConfigureAwait(false);
            return;
        }

        var id = context.Request.RouteValues["id"] as string;
        // An id no conflict can have (too long, or with characters such as NUL that a store's text cannot hold) is unknown.
        var conflict = id is null || options.Limits.CheckId(id) is not null
            ? null
            : await engine.FindConflictAsync(id, context.RequestAborted).ConfigureAwait(false);
        if (conflict is null || !await IsAllowedAsync(context, conflict.Scope, ScopeAccess.Read).ConfigureAwait(false))
        {
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.NotFound, ConflictNotFound)).ConfigureAwait(false);
            return;
        }

        if (!await IsAllowedAsync(context, conflict.Scope, ScopeAccess.Write).ConfigureAwait(false))
        {
            await ForbidAsync(context, conflict.Scope).ConfigureAwait(false);
            return;
        }

        if (choice == ResolveChoice.Edited && CheckEdited(request, conflict) is { } invalid)
        {
            await RefuseAsync(context, invalid).ConfigureAwait(false);
            return;
        }

        var resolved = await engine.ResolveAsync(conflict.Id, conflict.Scope, choice, request.Fields, context.RequestAborted).ConfigureAwait(false);
        if (resolved is null)
        {
            // Removed between the look-up and the transaction (compaction): as unknown as any other id.
            await RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.NotFound, ConflictNotFound)).ConfigureAwait(false);
            return;
        }

        await WriteJsonAsync(context, resolved, ProtocolJson.ConflictRecord).ConfigureAwait(false);
    }

    public async Task HealthAsync(HttpContext context)
    {
        try
        {
            await engine.CheckHealthAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !context.RequestAborted.IsCancellationRequested)
        {
            Log.HealthCheckFailed(logger, e);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            await WriteJsonAsync(context, new HealthResponse { Status = "unavailable", Clock = TryClock(out var now) ? now : default }, ProtocolJson.HealthResponse).ConfigureAwait(false);
            return;
        }

        await WriteJsonAsync(context, new HealthResponse { Status = "ok", Clock = engine.Clock.Now() }, ProtocolJson.HealthResponse).ConfigureAwait(false);
    }

    private bool TryClock(out HybridTimestamp now)
    {
        try
        {
            now = engine.Clock.Now();
            return true;
        }
        catch (InvalidOperationException)
        {
            now = default;
            return false;
        }
    }

    private ProtocolError? CheckEdited(ResolveConflictRequest request, ConflictRecord conflict)
    {
        if (request.Fields is not { Count: > 0 } fields)
        {
            return new ProtocolError(ProtocolErrorCodes.InvalidMessage, "An edited resolution carries 'fields': a value for one or more of the conflict's fields.");
        }

        foreach (var name in fields.Keys)
        {
            var known = false;
            foreach (var field in conflict.Fields)
            {
                if (string.Equals(field.Name, name, StringComparison.Ordinal))
                {
                    known = true;
                    break;
                }
            }

            if (!known)
            {
                return new ProtocolError(ProtocolErrorCodes.InvalidMessage, $"Field '{name}' is not one of the conflict's fields.");
            }
        }

        // The values obey the same bounds as any write.
        var asMutation = new Mutation
        {
            Id = 1,
            Scope = conflict.Scope,
            Collection = conflict.Collection,
            DocumentId = conflict.DocumentId,
            Kind = MutationKind.Resolve,
            Hlc = default,
            Fields = fields,
            ConflictId = conflict.Id,
        };
        return options.Limits.Check(asMutation);
    }

    /// <summary>Reads the <c>scope</c> query parameter: given once, and a valid scope name.</summary>
    private (string? Scope, ProtocolError? Error) ReadScope(HttpContext context)
    {
        if (!context.Request.Query.TryGetValue("scope", out var values) || values.Count != 1)
        {
            return (null, new ProtocolError(ProtocolErrorCodes.InvalidMessage, "'scope' must be given once."));
        }

        var scope = values[0];
        return options.Limits.CheckScope(scope) is { } error
            ? (null, error with { Message = "'scope' is invalid. " + error.Message })
            : (scope, null);
    }

    private async ValueTask<bool> IsAllowedAsync(HttpContext context, string scope, ScopeAccess access) =>
        await authorizer.IsAllowedAsync(context.User, scope, access, context.RequestAborted).ConfigureAwait(false);

    private Task ForbidAsync(HttpContext context, string scope)
    {
        Log.ScopeForbidden(logger, LogText.Sanitize(context.User.Identity?.Name ?? "(unnamed)"), scope);
        return Problem.WriteAsync(context, StatusCodes.Status403Forbidden, ProtocolErrorCodes.ScopeForbidden, $"The caller may not use scope '{scope}'.", scope);
    }

    /// <summary>Refuses a principal without a stable identity (a token without a subject): 401 <c>unauthenticated</c>.</summary>
    internal Task RefuseUnidentifiedAsync(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\", error_description=\"The token has no subject\"";
        return RefuseAsync(context, new ProtocolError(ProtocolErrorCodes.Unauthenticated, PrincipalIdentity.NoSubject));
    }

    private Task RefuseAsync(HttpContext context, ProtocolError error)
    {
        var status = Problem.StatusOf(error.Code);
        Log.RequestRefused(logger, LogText.Sanitize(context.Request.Path), status, error.Code);
        return Problem.WriteAsync(context, status, error.Code, error.Message);
    }

    private static Task WriteJsonAsync<T>(HttpContext context, T value, JsonTypeInfo<T> typeInfo)
    {
        context.Response.ContentType = JsonContentType;
        context.Response.Headers.CacheControl = "no-store";
        return JsonSerializer.SerializeAsync(context.Response.Body, value, typeInfo, context.RequestAborted);
    }
}
