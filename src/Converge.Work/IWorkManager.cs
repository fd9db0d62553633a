namespace Converge.Work;

/// <summary>Enqueues, observes and cancels durable work. Thread-safe.</summary>
public interface IWorkManager
{
    /// <summary>Enqueues independent work; returns once it is stored durably.</summary>
    /// <param name="requests">The requests.</param>
    /// <param name="cancellationToken">A token to stop waiting; the work may still be enqueued.</param>
    /// <returns>A task that completes when the work is stored.</returns>
    Task EnqueueAsync(IEnumerable<WorkRequest> requests, CancellationToken cancellationToken = default);

    /// <summary>Enqueues one-time work under a unique name, resolving a clash by <paramref name="policy"/>.</summary>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="policy">What to do when unfinished work already has the name.</param>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>What was done.</returns>
    Task<UniqueWorkOutcome> EnqueueUniqueWorkAsync(
        string uniqueName, ExistingWorkPolicy policy, OneTimeWorkRequest request, CancellationToken cancellationToken = default);

    /// <summary>Enqueues periodic work under a unique name, resolving a clash by <paramref name="policy"/>.</summary>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="policy">What to do when unfinished work already has the name.</param>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>What was done.</returns>
    /// <exception cref="InvalidOperationException"><see cref="ExistingPeriodicWorkPolicy.Update"/> was asked for a name that holds one-time work or a chain.</exception>
    Task<UniqueWorkOutcome> EnqueueUniquePeriodicWorkAsync(
        string uniqueName, ExistingPeriodicWorkPolicy policy, PeriodicWorkRequest request, CancellationToken cancellationToken = default);

    /// <summary>Starts a chain with work that runs in parallel.</summary>
    /// <param name="work">The first work.</param>
    /// <returns>The continuation to extend with <see cref="WorkContinuation.Then(OneTimeWorkRequest[])"/> and enqueue.</returns>
    WorkContinuation BeginWith(params OneTimeWorkRequest[] work);

    /// <summary>Starts a chain under a unique name.</summary>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="policy">What to do when unfinished work already has the name.</param>
    /// <param name="work">The first work.</param>
    /// <returns>The continuation.</returns>
    WorkContinuation BeginUniqueWork(string uniqueName, ExistingWorkPolicy policy, params OneTimeWorkRequest[] work);

    /// <summary>Gets a work item's info.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">A token to cancel the query.</param>
    /// <returns>The info, or <see langword="null"/> when there is no such work.</returns>
    Task<WorkInfo?> GetWorkInfoAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Gets the infos of the work a query selects, oldest first.</summary>
    /// <param name="query">The query.</param>
    /// <param name="cancellationToken">A token to cancel the query.</param>
    /// <returns>The infos.</returns>
    Task<IReadOnlyList<WorkInfo>> GetWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default);

    /// <summary>Streams a work item's info: now, then after every change, until cancelled.</summary>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">A token that ends the stream.</param>
    /// <returns>The infos (null while there is no such work).</returns>
    IAsyncEnumerable<WorkInfo?> WatchWorkInfoAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Streams the infos a query selects: now, then after every change, until cancelled.</summary>
    /// <param name="query">The query.</param>
    /// <param name="cancellationToken">A token that ends the stream.</param>
    /// <returns>The infos.</returns>
    IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchWorkInfosAsync(WorkQuery query, CancellationToken cancellationToken = default);

    /// <summary>Cancels the unfinished work a query selects, and every unfinished work that depends on it.</summary>
    /// <param name="query">The query; its states are ignored.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were cancelled.</returns>
    Task<int> CancelWorkAsync(WorkQuery query, CancellationToken cancellationToken = default);

    /// <summary>Deletes finished work (succeeded, failed, cancelled) that no unfinished work depends on.</summary>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were deleted.</returns>
    Task<int> PruneWorkAsync(CancellationToken cancellationToken = default);
}

/// <summary>Convenience members for <see cref="IWorkManager"/>, in WorkManager's vocabulary.</summary>
public static class WorkManagerExtensions
{
    /// <summary>Enqueues one work.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>A task that completes when the work is stored.</returns>
    public static Task EnqueueAsync(this IWorkManager manager, WorkRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentNullException.ThrowIfNull(request);
        return manager.EnqueueAsync([request], cancellationToken);
    }

    /// <summary>Gets the infos of the work under a unique name.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="cancellationToken">A token to cancel the query.</param>
    /// <returns>The infos.</returns>
    public static Task<IReadOnlyList<WorkInfo>> GetWorkInfosForUniqueWorkAsync(
        this IWorkManager manager, string uniqueName, CancellationToken cancellationToken = default) =>
        manager.GetWorkInfosAsync(WorkQuery.ForUniqueNames(uniqueName), cancellationToken);

    /// <summary>Gets the infos of the work with a tag.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="tag">The tag.</param>
    /// <param name="cancellationToken">A token to cancel the query.</param>
    /// <returns>The infos.</returns>
    public static Task<IReadOnlyList<WorkInfo>> GetWorkInfosByTagAsync(
        this IWorkManager manager, string tag, CancellationToken cancellationToken = default) =>
        manager.GetWorkInfosAsync(WorkQuery.ForTags(tag), cancellationToken);

    /// <summary>Streams the infos of the work under a unique name.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="cancellationToken">A token that ends the stream.</param>
    /// <returns>The infos.</returns>
    public static IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchWorkInfosForUniqueWorkAsync(
        this IWorkManager manager, string uniqueName, CancellationToken cancellationToken = default) =>
        manager.WatchWorkInfosAsync(WorkQuery.ForUniqueNames(uniqueName), cancellationToken);

    /// <summary>Streams the infos of the work with a tag.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="tag">The tag.</param>
    /// <param name="cancellationToken">A token that ends the stream.</param>
    /// <returns>The infos.</returns>
    public static IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchWorkInfosByTagAsync(
        this IWorkManager manager, string tag, CancellationToken cancellationToken = default) =>
        manager.WatchWorkInfosAsync(WorkQuery.ForTags(tag), cancellationToken);

    /// <summary>Cancels a work item by id (and its unfinished dependents).</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="id">The id.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were cancelled.</returns>
    public static Task<int> CancelWorkByIdAsync(this IWorkManager manager, Guid id, CancellationToken cancellationToken = default) =>
        manager.CancelWorkAsync(WorkQuery.ForIds(id), cancellationToken);

    /// <summary>Cancels the work under a unique name.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="uniqueName">The unique name.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were cancelled.</returns>
    public static Task<int> CancelUniqueWorkAsync(this IWorkManager manager, string uniqueName, CancellationToken cancellationToken = default) =>
        manager.CancelWorkAsync(WorkQuery.ForUniqueNames(uniqueName), cancellationToken);

    /// <summary>Cancels the work with a tag.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="tag">The tag.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were cancelled.</returns>
    public static Task<int> CancelAllWorkByTagAsync(this IWorkManager manager, string tag, CancellationToken cancellationToken = default) =>
        manager.CancelWorkAsync(WorkQuery.ForTags(tag), cancellationToken);

    /// <summary>Cancels all unfinished work.</summary>
    /// <param name="manager">The manager.</param>
    /// <param name="cancellationToken">A token to stop waiting.</param>
    /// <returns>How many work items were cancelled.</returns>
    public static Task<int> CancelAllWorkAsync(this IWorkManager manager, CancellationToken cancellationToken = default) =>
        manager.CancelWorkAsync(WorkQuery.All, cancellationToken);
}
