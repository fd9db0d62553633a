using System.Diagnostics.CodeAnalysis;

namespace Converge.Server.Storage;

/// <summary>The version of the store contract (<see cref="ISyncStore"/> and the types it takes and returns) that this Converge.Server implements.</summary>
/// <remarks>
/// The contract is public for store authors, and experimental: implementing a store is supported, but the contract may
/// change in a minor version of Converge.Server. Each change that a store must follow raises <see cref="Version"/>, and
/// the server refuses to start on a store that states another (<see cref="ISyncStore.ContractVersion"/>), naming the
/// packages to update. Using the contract needs <c>CONVERGE0002</c> suppressed, for example with
/// <c>&lt;NoWarn&gt;$(NoWarn);CONVERGE0002&lt;/NoWarn&gt;</c> in the store's project.
/// </remarks>
[Experimental(DiagnosticId)]
public static class SyncStoreContract
{
    /// <summary>The id of the diagnostic the compiler reports where code uses the store contract.</summary>
    public const string DiagnosticId = "CONVERGE0002";

    /// <summary>The version of the store contract: 1 for the contract of Converge.Server 0.1.</summary>
    public const int Version = 1;
}
