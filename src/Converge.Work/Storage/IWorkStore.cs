namespace Converge.Work;

/// <summary>Where the scheduler keeps its work: a SQLite file (one scheduler process) or a shared database (several nodes).</summary>
/// <remarks>
/// <para>
/// The engine's loop is the only user of the write side, one batch at a time: <see cref="Begin"/>, the batch's
/// reads and writes, then <see cref="Commit"/> or <see cref="Rollback"/>. <see cref="Query"/> may run on any thread.
/// </para>
/// <para>
/// A store shared by several nodes marks the rows a node claims as its own. <see cref="Running"/> returns only this
/// node's running rows, <see cref="WorkRow.RunningElsewhere"/> marks rows another node runs, and finishing a run
/// changes the row only while this node still owns it. Such a store keeps its claims alive through
/// <see cref="Maintain"/>, and takes over the runs of nodes whose lease ran out.
/// </para>
/// </remarks>
internal interface IWorkStore : IDisposable
{
    /// <summary>Gets what the logs and <see cref="WorkManager.DatabasePath"/> name the store by: a file path or a database.</summary>
    string Path { get; }

    /// <summary>Gets or sets the time of the current batch, in Unix milliseconds: when rows that finish in it finished.</summary>
    long BatchTime { get; set; }

    /// <summary>Gets whether several schedulers (nodes) share the store: claims are leased, and a node runs only work it has a worker for.</summary>
    bool IsShared { get; }

    /// <summary>Gets whether the store's calls wait on the network (a database server), not only on a local file.</summary>
    /// <remarks>The engine's loop then keeps a thread of its own rather than hold a thread-pool thread through each round trip.</remarks>
    bool WaitsOnNetwork { get; }

    /// <summary>Gets how many due rows the engine reads at a time, at least: the rows beyond its free slots wait in memory for later batches.</summary>
    /// <remarks>
    /// A store with one scheduler reads ahead to save a due query per batch. A shared store reads only what it claims:
    /// its due query locks the rows it returns until the claim commits, and rows read ahead would be unlocked by then,
    /// so other nodes' read-aheads would overlap and their claims collide.
    /// </remarks>
    int DueReadAhead { get; }

    /// <summary>Gets how often <see cref="Maintain"/> must run, or <see langword="null"/> when the store needs no upkeep.</summary>
    TimeSpan? MaintenanceInterval { get; }

    /// <summary>Begins the batch's transaction, waiting for the store if another writer holds it.</summary>
    void Begin();

    /// <summary>Begins a transaction only if that never waits; the caller's thread then commits the batch itself.</summary>
    /// <returns>Whether the transaction began.</returns>
    bool TryBeginNow();

    /// <summary>Commits the batch.</summary>
    void Commit();

    /// <summary>Rolls the batch back; does nothing outside a transaction.</summary>
    void Rollback();

    /// <summary>Marks a point the batch can roll back to, so one op's failure does not undo the others.</summary>
    /// <param name="name">The savepoint's name.</param>
    void Savepoint(string name);

    /// <summary>Forgets a savepoint, keeping what was written since.</summary>
    /// <param name="name">The savepoint's name.</param>
    void Release(string name);

    /// <summary>Undoes what was written since a savepoint, and forgets it.</summary>
    /// <param name="name">The savepoint's name.</param>
    void RollbackTo(string name);

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
    /// <returns>The ids of the works taken over.</returns>
    IReadOnlyList<Guid> Maintain(long now);

    /// <summary>Inserts a new work and its tags, unique name and prerequisites.</summary>
    /// <param name="row">The row; its <see cref="WorkRow.Seq"/> is set.</param>
    /// <param name="prerequisites">The works it waits for.</param>
    /// <exception cref="InvalidOperationException">A work with its id exists.</exception>
    void Insert(WorkRow row, IReadOnlyCollection<Guid> prerequisites);

    /// <summary>Writes every column of a row back.</summary>
    /// <param name="row">The row, read in this transaction.</param>
    void Update(WorkRow row);

    /// <summary>Replaces the stored tags of a row with its current ones.</summary>
    /// <param name="row">The row.</param>
    void ReplaceTags(WorkRow row);

    /// <summary>The claim: marks due rows running on this node, each if it is still as it was read.</summary>
    /// <param name="rows">The rows, with their attempt counts already raised.</param>
    /// <returns>For each row, whether it is now running here. A shared store does not wait for a row another node has locked: it is not claimed.</returns>
    bool[] MarkRunning(IReadOnlyList<WorkRow> rows);

    /// <summary>Finishes a one-time work that this node runs.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="state">Succeeded or failed.</param>
    /// <param name="outputJson">Its output.</param>
    /// <param name="failureReason">Why it failed, if it did.</param>
    /// <returns>Whether other work depends on it, or <see langword="null"/> when it no longer runs here.</returns>
    bool? FinishOneTime(Guid id, WorkState state, string outputJson, string? failureReason);

    /// <summary>Finishes the one-time works among these that this node runs and that no work depends on.</summary>
    /// <param name="finishes">The results, one per work.</param>
    /// <returns>The ids of the works finished; the others are left as they were.</returns>
    IReadOnlySet<Guid> FinishOneTimeWithoutDependents(IReadOnlyList<OneTimeFinish> finishes);

    /// <summary>Deletes finished work that finished at or before a time and that no unfinished work depends on.</summary>
    /// <param name="finishedBefore">The cutoff, in Unix milliseconds.</param>
    /// <returns>The ids deleted.</returns>
    List<Guid> Prune(long finishedBefore);

    /// <summary>Stores a running work's progress.</summary>
    /// <param name="id">The work id.</param>
    /// <param name="progressJson">The progress, or <see langword="null"/> to clear it.</param>
    void SetProgress(Guid id, string? progressJson);

    /// <summary>Deletes a work and everything that refers to it.</summary>
    /// <param name="id">The work id.</param>
    void Delete(Guid id);

    /// <summary>Reads one row for writing; a shared store locks it until the batch ends.</summary>
    /// <param name="id">The work id.</param>
    /// <returns>The row, or <see langword="null"/>.</returns>
    WorkRow? Get(Guid id);

    /// <summary>Reads the works of a unique name, oldest first; a shared store serializes writers of the same name.</summary>
    /// <param name="name">The unique name.</param>
    /// <returns>The rows.</returns>
    List<WorkRow> GetByName(string name);

    /// <summary>The works that wait for a work.</summary>
    /// <param name="id">The prerequisite.</param>
    /// <returns>Their ids.</returns>
    List<Guid> Dependents(Guid id);

    /// <summary>Whether any work waits for a work.</summary>
    /// <param name="id">The prerequisite.</param>
    /// <returns><see langword="true"/> if one does.</returns>
    bool HasDependents(Guid id);

    /// <summary>The states of a work's prerequisites.</summary>
    /// <param name="id">The work.</param>
    /// <returns>The states.</returns>
    List<WorkState> PrerequisiteStates(Guid id);

    /// <summary>The outputs of a work's prerequisites, oldest first.</summary>
    /// <param name="id">The work.</param>
    /// <returns>The outputs, as JSON.</returns>
    List<string> PrerequisiteOutputs(Guid id);

    /// <summary>Enqueued works that are due and whose constraints hold, expedited first, then by due time and age.</summary>
    /// <param name="now">The batch time.</param>
    /// <param name="unmet">The constraints the device does not meet now.</param>
    /// <param name="limit">The most rows to return.</param>
    /// <param name="running">The works this node runs; left out.</param>
    /// <param name="workers">On a shared store, the worker names this node can run (the rest is left to nodes that can); <see langword="null"/> for any.</param>
    /// <typeparam name="TRunning">The engine's run type.</typeparam>
    /// <returns>The rows; a shared store leaves out rows other nodes are claiming.</returns>
    List<WorkRow> Due<TRunning>(long now, ConstraintBits unmet, int limit, IReadOnlyDictionary<Guid, TRunning> running, IReadOnlyCollection<string>? workers);

    /// <summary>The earliest due time after a time of enqueued work whose constraints hold.</summary>
    /// <param name="now">The time.</param>
    /// <param name="unmet">The constraints the device does not meet now.</param>
    /// <returns>The time, or <see langword="null"/> when nothing is waiting.</returns>
    long? NextDue(long now, ConstraintBits unmet);

    /// <summary>The rows in state RUNNING that this node runs.</summary>
    /// <returns>The rows.</returns>
    List<WorkRow> Running();

    /// <summary>The rows a cancel selects, read for writing.</summary>
    /// <param name="query">The query.</param>
    /// <returns>The rows.</returns>
    List<WorkRow> SelectForWrite(WorkQuery query);

    /// <summary>Answers a query outside the write transaction; safe on any thread.</summary>
    /// <param name="query">The query.</param>
    /// <returns>The works.</returns>
    List<WorkInfo> Query(WorkQuery query);
}

/// <summary>The result of a one-time work's run, as stored.</summary>
/// <param name="Id">The work id.</param>
/// <param name="State">Succeeded or failed.</param>
/// <param name="OutputJson">Its output.</param>
/// <param name="FailureReason">Why it failed, if it did.</param>
internal readonly record struct OneTimeFinish(Guid Id, WorkState State, string OutputJson, string? FailureReason);
