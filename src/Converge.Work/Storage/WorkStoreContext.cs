using Microsoft.Extensions.Logging;

namespace Converge.Work;

/// <summary>What a store is opened with.</summary>
/// <param name="Options">The scheduler's options.</param>
/// <param name="OnWake">
/// Called on any thread when another process or node committed to the store: with <see langword="true"/> when it
/// enqueued or cancelled work (look for due work and reconcile runs), <see langword="false"/> when it only ran work
/// (refresh watchers).
/// </param>
/// <param name="LoggerFactory">The logger factory.</param>
/// <param name="TimeProvider">The clock.</param>
internal sealed record WorkStoreContext(WorkManagerOptions Options, Action<bool> OnWake, ILoggerFactory LoggerFactory, TimeProvider TimeProvider);
