using Converge.Work.Storage;

namespace Converge.Work;

/// <summary>Opens the store a scheduler's options name, after checking that a store package implements this Converge.Work's contract.</summary>
internal static class WorkStores
{
    /// <summary>Opens the store: the provider's, or the SQLite file at <see cref="WorkManagerOptions.DatabasePath"/>.</summary>
    /// <param name="context">What the store is opened with.</param>
    /// <returns>The open store.</returns>
    /// <exception cref="InvalidOperationException">The store package implements another version of the contract.</exception>
    public static IWorkStore Open(WorkStoreContext context)
    {
        if (context.Options.StoreProvider is not { } provider)
        {
            return SqliteWorkStore.Open(context);
        }

        // Before any other call into the store package: a package built for another contract may call what is no longer here.
        var version = provider.ContractVersion;
        if (version != WorkStoreContract.Version)
        {
            throw new InvalidOperationException(MismatchMessage(provider.GetType().Assembly.GetName(), version));
        }

        return provider.Open(context);
    }

    private static string MismatchMessage(System.Reflection.AssemblyName store, int storeVersion)
    {
        var work = typeof(WorkManager).Assembly.GetName();
        var update = storeVersion < WorkStoreContract.Version
            ? $"Update {store.Name} to the release that matches {work.Name} {work.Version}."
            : $"Update {work.Name} to the release that matches {store.Name} {store.Version}.";
        return $"The work store package {store.Name} {store.Version} implements version {storeVersion} of the work store contract, " +
            $"but {work.Name} {work.Version} implements version {WorkStoreContract.Version}. {update} " +
            "Store packages and Converge.Work are released together: use the same version of each.";
    }
}
