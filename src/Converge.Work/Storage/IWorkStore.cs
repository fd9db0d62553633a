using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>Where the scheduler keeps its work: a SQLite file (one scheduler process) or a shared database (several nodes).</summary>
/// <remarks>
/// <para>
/// The scheduler's loop is the only user of the write side, one batch at a time: <see cref="BeginAsync"/>, the batch's
/// reads and writes, then <see cref="CommitAsync"/> or <see cref="RollbackAsync"/>. The write side takes no
/// cancellation token: a batch carries acknowledged requests, so the loop runs it to its commit or rollback and never
/// abandons it halfway. <see cref="QueryAsync"/> may run on any thread, at any time, and honours its token.
/// </para>
/// <para>
/// A store whose calls complete at once (a local file) returns completed tasks; a store on a database server waits
/// for its replies without holding a thread.
/// </para>
/// <para>
/// A store shared by several nodes marks the rows a node claims as its own. <see cref="RunningAsync"/> returns only
/// this node's running rows, <see cref="WorkRow.RunningElsewhere"/> marks rows another node runs, and finishing a run
/// changes the row only while this node still owns it. Such a store keeps its claims alive through
/// <see cref="MaintainAsync"/>, and takes over the runs of nodes whose lease ran out.
/// </para>
/// </remarks>
[Experimental(WorkStoreContract.DiagnosticId)]
public interface IWorkStore : IAsyncDisposable
{
    /// <summary>Gets what the logs and <see cref="WorkManager.DatabasePath"/> name the store by: a file path or a database.</summary>
    string Path { get; }

    /// <summary>Gets or sets the time of the current batch, in Unix milliseconds: when rows that finish in it finished.</summary>
    long BatchTime { get; set; }

    /// <summary>Gets whether several schedulers (nodes) share the store: claims are leased, and a node runs only work it has a worker for.</summary>
    bool IsShared { get; }

    /// <summary>Gets how many due rows the scheduler reads at a time, at least: the rows beyond its free slots wait in memory for later batches.</summary>
    /// <remarks>
    /// A store with one scheduler reads ahead to save a due query per batch. A shared store reads only what it claims:
    /// its due query locks the rows it returns until the claim commits, and rows read ahead would be unlocked by then,
    /// so other nodes' read-aheads would overlap and their claims collide.
    /// </remarks>
    int DueReadAhead { get; }

    /// <summary>Gets how often <see cref="MaintainAsync"/> must run, or <see langword="null"/> when the store needs no upkeep.</summary>
    TimeSpan? MaintenanceInterval { get; }

    /// <summary>Begins the batch's transaction, waiting for the store if another writer holds it.</summary>
    /// <returns>A task that completes when the transaction has begun.</returns>
    ValueTask BeginAsync();

    /// <summary>Begins a transaction only if that never waits; the caller's thread then commits the batch itself.</summary>
    /// <returns>Whether the transaction began. A store on a database server always returns <see langword="false"/>.</returns>
    bool TryBeginNow();

    /// <summary>Commits the batch.</summary>
    /// <returns>A task that completes when the batch is durable.</returns>
    ValueTask CommitAsync();

    /// <summary>Rolls the batch back; does nothing outside a transaction.</summary>
    /// <returns>A task that completes when the batch is undone.</returns>
    ValueTask RollbackAsync();

    /// <summary>Marks a point the batch can roll back to, so one op's failure does not undo the others.</summary>
    /// <param name="name">The savepoint's name.</param>
    /// <returns>A task that completes when the savepoint is set (or queued, on a store that sends it with the next statement).</returns>
    ValueTask SavepointAsync(string name);

    /// <summary>Forgets a savepoint, keeping what was written since.</summary>
    /// <param name="name">The savepoint's name.</param>
    /// <returns>A task that completes when the savepoint is released.</returns>
    ValueTask ReleaseAsync(string name);

    /// <summary>Undoes what was written since a savepoint, and forgets it.</summary>
    /// <param name="name">The savepoint's name.</param>
    /// <returns>A task that completes when the writes are undone.</returns>
    ValueTask RollbackToAsync(string name);

    /// <summary>Whether an exception means the store itself failed (disk full, I/O, lost connection), not one op.</summary>
    /// <param name="e">The exception an op threw.</param>
    /// <returns><see langword="true"/> when the whole batch must fail.</returns>
    bool IsStoreFailure(Exception e);

    /// <summary>Before the commit of a batch that changed work: tells the store's other schedulers, once the commit is done.</summary>
    /// <param name="reconcile">
    /// <see langword="true"/> when the batch enqueued, cancelled or changed work (others look for due work and stop runs
    /// cancelled here); <see langword="false"/> when it only started or finished runs (others refresh their watchers).
    /// </param>
    void SignalWrites(bool reconcile);

    /// <summary>Renews this node's claims and takes over the runs of nodes whose lease ran out, inside the batch.</summary>
    /// <param name="now">The batch time, in Unix milliseconds; taken-over work is due then.</param>
    /// <returns>The ids of the work items taken over.</returns>
    ValueTask<IReadOnlyList<Guid>> MaintainAsync(long now);

    /// <summary>Inserts a new work and its tags, unique name and prerequisites.</summary>
    /// <param name="row">The row; its <see cref="WorkRow.Seq"/> and <see cref="WorkRow.HasPrerequisites"/> are set.</param>
    /// <param name="prerequisites">The work items it waits for.</param>
    /// <returns>A task that completes when the row is written.</returns>
    /// <exception cref="InvalidOperationException">A work with its id exists.</exception>
    ValueTask InsertAsync(WorkRow row, IReadOnlyCollection<Guid> prerequisites);

    /// <summary>Writes every column of a row back.</summary>
    /// <param name="row">The row, read in this transaction.</param>
    /// <returns>A task that completes when the row is written.</returns>
    ValueTask UpdateAsync(WorkRow row);

    /// <summary>Replaces the stored tags of a row with its current ones.</summary>
    /// <param name="row">The row.</param>
    /// <returns>A task that completes when the tags are written.</returns>
    ValueTask ReplaceTagsAsync(WorkRow row);

    /// <summary>The claim: marks due rows running on this node, each if it is still as it was read.</summary>
    /// <param name="rows">The rows, with their attempt counts already raised.</param>
    /// <returns>For each row, whether it is now running here. A shared store does not wait for a row another node has locked: it is not claimed.</returns>
    ValueTask<IReadOnlyList<bool>> MarkRunningAsync(IReadOnlyList<WorkRow> rows);

    /// <summary>Finishes a one-time work that this node runs.</summary>
    /// <param name="finish">The result.</param>
    /// <returns>Whether other work depends on it, or <see langword="null"/> when it no longer runs here.</returns>
    ValueTask<bool?> FinishOneTimeAsync(OneTimeFinish finish);

    /// <summary>Finishes the one-time work items among these that this node runs and that nothing depends on.</summary>
    /// <param name="finishes">The results, one per work item.</param>
    /// <returns>The ids of the work items finished; the others are left as they were.</returns>
    ValueTask<IReadOnlySet<Guid>> FinishOneTimeWithoutDependentsAsync(IReadOnlyList<OneTimeFinish> finishes);

    /// <summary>Deletes finished work that finished at or before a time and that no unfinished work depends on.</summary>
    /// <param name="finishedBefore">The cutoff, in Unix milliseconds.</param>
    /// <returns>The ids deleted.</returns>
    ValueTask<IReadOnlyList<Guid>> PruneAsync(long finishedBefore);

    /// <summary>Stores a running work item's progress.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="progressJson">The progress, or <see langword="null"/> to clear it.</param>
    /// <returns>A task that completes when the progress is written.</returns>
    ValueTask SetProgressAsync(Guid id, string? progressJson);

    /// <summary>Deletes a work item and everything that refers to it.</summary>
    /// <param name="id">The work id.</param>
    /// <returns>A task that completes when the work is deleted.</returns>
    ValueTask DeleteAsync(Guid id);

    /// <summary>Reads one row for writing; a shared store locks it until the batch ends.</summary>
    /// <param name="id">The work id.</param>
    /// <returns>The row, or <see langword="null"/>.</returns>
    ValueTask<WorkRow?> GetAsync(Guid id);

    /// <summary>Reads the work items of a unique name, oldest first; a shared store serializes writers of the same name.</summary>
    /// <param name="name">The unique name.</param>
    /// <returns>The rows.</returns>
    ValueTask<IReadOnlyList<WorkRow>> GetByNameAsync(string name);

    /// <summary>The work items that wait for a work item.</summary>
    /// <param name="id">The prerequisite.</param>
    /// <returns>Their ids.</returns>
    ValueTask<IReadOnlyList<Guid>> DependentsAsync(Guid id);

    /// <summary>Whether any work item waits for a work item.</summary>
    /// <param name="id">The prerequisite.</param>
    /// <returns><see langword="true"/> if one does.</returns>
    ValueTask<bool> HasDependentsAsync(Guid id);

    /// <summary>The states of a work item's prerequisites.</summary>
    /// <param name="id">The work.</param>
    /// <returns>The states.</returns>
    ValueTask<IReadOnlyList<WorkState>> PrerequisiteStatesAsync(Guid id);

    /// <summary>The outputs of a work item's prerequisites, oldest first.</summary>
    /// <param name="id">The work.</param>
    /// <returns>The outputs, as JSON.</returns>
    ValueTask<IReadOnlyList<string>> PrerequisiteOutputsAsync(Guid id);

    /// <summary>Enqueued work items that are due and whose constraints hold, expedited first, then by due time and age.</summary>
    /// <param name="query">What to read: the time, the unmet constraints, the limit, the work items to leave out.</param>
    /// <returns>The rows; a shared store leaves out rows other nodes are claiming.</returns>
    ValueTask<IReadOnlyList<WorkRow>> DueAsync(DueQuery query);

    /// <summary>The earliest due time after a time of enqueued work whose constraints hold.</summary>
    /// <param name="after">The time, in Unix milliseconds.</param>
    /// <param name="unmet">The constraints the device does not meet now.</param>
    /// <returns>The time, or <see langword="null"/> when nothing is waiting.</returns>
    ValueTask<long?> NextDueAsync(long after, ConstraintBits unmet);

    /// <summary>The rows in state RUNNING that this node runs.</summary>
    /// <returns>The rows.</returns>
    ValueTask<IReadOnlyList<WorkRow>> RunningAsync();

    /// <summary>The rows a cancel selects, read for writing.</summary>
    /// <param name="query">The query.</param>
    /// <returns>The rows.</returns>
    ValueTask<IReadOnlyList<WorkRow>> SelectForWriteAsync(WorkQuery query);

    /// <summary>Answers a query outside the write transaction; safe on any thread.</summary>
    /// <param name="query">The query.</param>
    /// <param name="cancellationToken">Stops the query; the task then throws <see cref="OperationCanceledException"/>.</param>
    /// <returns>The rows, oldest first.</returns>
    ValueTask<IReadOnlyList<WorkRow>> QueryAsync(WorkQuery query, CancellationToken cancellationToken);
}
