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
        WorkStoreContract.ThrowIfUnsupported(provider.ContractVersion, provider.GetType().Assembly);
        return provider.Open(context);
    }
}
