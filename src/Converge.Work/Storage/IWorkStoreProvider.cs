using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>Opens a store other than the default SQLite file; set on <see cref="WorkManagerOptions.StoreProvider"/> by a store package.</summary>
[Experimental(WorkStoreContract.DiagnosticId)]
public interface IWorkStoreProvider
{
    /// <summary>Gets the version of the store contract the store implements.</summary>
    /// <value>Return <see cref="WorkStoreContract.Version"/>: a constant, compiled into the store package, so it states the version the package was built for.</value>
    int ContractVersion { get; }

    /// <summary>Opens the store; called once, by the <see cref="WorkManager"/> constructor, after the contract version was checked.</summary>
    /// <param name="context">What the store is opened with.</param>
    /// <returns>The open store; the manager disposes of it.</returns>
    IWorkStore Open(WorkStoreContext context);
}
