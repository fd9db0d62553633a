using System.Security.Claims;

namespace Converge.Server;

/// <summary>What a request does with a scope.</summary>
public enum ScopeAccess
{
    /// <summary>Pulls the scope's changes or lists its conflicts.</summary>
    Read,

    /// <summary>Pushes mutations to the scope or resolves its conflicts.</summary>
    Write,
}

/// <summary>Decides which scopes a principal may read and write.</summary>
/// <remarks>
/// The default reads the principal's claims of type <see cref="ConvergeServerOptions.ScopeClaimType"/>: a claim value
/// names a scope, and a value ending in <c>*</c> grants every scope that starts with what precedes it (<c>team:*</c>
/// grants <c>team:42</c>; <c>*</c> grants every scope). Register another implementation as a singleton before calling
/// <c>AddConvergeServer</c> to decide otherwise, for example from a database.
/// </remarks>
public interface IScopeAuthorizer
{
    /// <summary>Decides whether a principal may read or write a scope.</summary>
    /// <param name="principal">The authenticated principal.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="access">Whether the request reads or writes.</param>
    /// <param name="cancellationToken">Stops the decision.</param>
    /// <returns>Whether access is allowed.</returns>
    ValueTask<bool> IsAllowedAsync(ClaimsPrincipal principal, string scope, ScopeAccess access, CancellationToken cancellationToken);
}

/// <summary>The default <see cref="IScopeAuthorizer"/>: scope claims, with trailing-<c>*</c> prefixes.</summary>
internal sealed class ClaimsScopeAuthorizer(string claimType) : IScopeAuthorizer
{
    public ValueTask<bool> IsAllowedAsync(ClaimsPrincipal principal, string scope, ScopeAccess access, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(principal);
        ArgumentNullException.ThrowIfNull(scope);
        foreach (var identity in principal.Identities)
        {
            foreach (var claim in identity.Claims)
            {
                if (string.Equals(claim.Type, claimType, StringComparison.Ordinal) && Grants(claim.Value, scope))
                {
                    return ValueTask.FromResult(true);
                }
            }
        }

        return ValueTask.FromResult(false);
    }

    internal static bool Grants(string granted, string scope) =>
        granted.EndsWith('*')
            ? scope.AsSpan().StartsWith(granted.AsSpan(0, granted.Length - 1), StringComparison.Ordinal)
            : string.Equals(granted, scope, StringComparison.Ordinal);
}
