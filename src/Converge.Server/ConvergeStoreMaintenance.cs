using Converge.Server.Storage.Sqlite;

namespace Converge.Server;

/// <summary>Operations on the embedded SQLite store while no server runs on it, for the command line and deployment scripts; they need no <see cref="ConvergeServerOptions"/>.</summary>
public static class ConvergeStoreMaintenance
{
    /// <summary>Gives the store a new epoch. Run it once after restoring the database from a backup, before the server starts on it.</summary>
    /// <param name="databasePath">The store's SQLite file.</param>
    /// <param name="cancellationToken">Stops the wait for the store.</param>
    /// <returns>The new epoch.</returns>
    /// <remarks>
    /// A restored store has the history of the backup, not the one devices followed since: their cursors point into a
    /// history it never had. Pull responses carry the epoch; a device that sees a new one drops what it holds of the scope
    /// (keeping its unsent writes) and downloads it again, instead of pulling after a cursor that means nothing here.
    /// </remarks>
    /// <exception cref="FileNotFoundException">There is no database at <paramref name="databasePath"/>.</exception>
    /// <exception cref="InvalidOperationException">A server runs on the store, or the store cannot be opened.</exception>
    public static async Task<string> RotateEpochAsync(string databasePath, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        if (!File.Exists(databasePath))
        {
            throw new FileNotFoundException($"There is no Converge store at '{databasePath}'.", databasePath);
        }

        using var store = new SqliteSyncStore(databasePath, SynchronousMode.Full);
        await store.InitializeAsync(cancellationToken).ConfigureAwait(false);
        return await store.RotateEpochAsync(cancellationToken).ConfigureAwait(false);
    }
}
