using System.Reflection;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.Server.Storage;

/// <summary>Refuses, at start, a store built for another version of the store contract, with a message that names the packages to update.</summary>
/// <remarks>
/// Converge.Server and a store's package (Converge.Server.PostgreSql, or an app's own) ship apart: a user may update one
/// and not the other. Without this check, such a pair would start and then fail in the middle of a push or a pull, on a
/// member that one side no longer has.
/// </remarks>
internal static class StoreContractCheck
{
    /// <summary>Resolves the registered store, turning a store type that cannot load against this Converge.Server into a clear error.</summary>
    /// <exception cref="InvalidOperationException">The store was built for another version of Converge.Server.</exception>
    public static ISyncStore Resolve(IServiceProvider services)
    {
        try
        {
            return services.GetRequiredService<ISyncStore>();
        }
        catch (Exception e) when (e is TypeLoadException or MissingMemberException)
        {
            throw new InvalidOperationException(
                $"The Converge sync store registered with this app cannot be loaded by {Describe(typeof(StoreContractCheck).Assembly)}: it was built for another version. " +
                "Update the store's package (for example Converge.Server.PostgreSql) to the version of Converge.Server, or both to the latest.",
                e);
        }
    }

    /// <summary>Checks that a store implements the store contract of this Converge.Server.</summary>
    /// <exception cref="InvalidOperationException">The store states another contract version, or cannot state one.</exception>
    public static void Verify(ISyncStore store)
    {
        var storeType = store.GetType();
        int version;
        try
        {
            version = store.ContractVersion;
        }
        catch (Exception e) when (e is TypeLoadException or MissingMemberException)
        {
            throw new InvalidOperationException(Mismatch(storeType, null), e);
        }

        if (version != SyncStoreContract.Version)
        {
            throw new InvalidOperationException(Mismatch(storeType, version));
        }
    }

    private static string Mismatch(Type storeType, int? version)
    {
        var server = typeof(StoreContractCheck).Assembly;
        var store = storeType.Assembly;
        var package = store.GetName().Name;
        var states = version is { } v ? $"implements version {v} of the store contract" : "does not state the version of the store contract it implements";
        var update = version > SyncStoreContract.Version
            ? $"Update Converge.Server to the version of {package}."
            : $"Update {package} to the version of Converge.Server.";
        return $"The Converge sync store {storeType.Name} ({Describe(store)}) {states}, and {Describe(server)} implements version {SyncStoreContract.Version}: " +
            $"the store was built for another version of Converge.Server. {update}";
    }

    /// <summary>An assembly's name and version, the way its package is named, without the build's source revision.</summary>
    private static string Describe(Assembly assembly)
    {
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "?";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return $"{assembly.GetName().Name} {(plus < 0 ? version : version[..plus])}";
    }
}
