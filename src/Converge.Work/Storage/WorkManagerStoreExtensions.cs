using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>Changes a manager's stored work directly, as test drivers do (Converge.Work.Testing's <c>WorkTestDriver</c>).</summary>
[Experimental(WorkStoreContract.DiagnosticId)]
public static class WorkManagerStoreExtensions
{
    /// <summary>Changes one work item in the manager's store, inside a batch of its loop, and tells the work's watchers.</summary>
    /// <param name="manager">The manager; started if it has not started.</param>
    /// <param name="id">The work the edit changes.</param>
    /// <param name="edit">
    /// The change: reads and writes the store within the batch's transaction, given the batch time in Unix milliseconds.
    /// An exception it throws reaches the caller, and its writes are undone.
    /// </param>
    /// <param name="cancellationToken">Ends the wait; the edit is still applied.</param>
    /// <typeparam name="T">What the edit returns.</typeparam>
    /// <returns>What the edit returned, once its batch committed.</returns>
    public static Task<T> EditWorkInStoreAsync<T>(this WorkManager manager, Guid id, Func<IWorkStore, long, ValueTask<T>> edit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentNullException.ThrowIfNull(edit);
        return manager.EditAsync(id, edit, cancellationToken);
    }
}
