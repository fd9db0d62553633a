namespace Converge.Work;

/// <summary>Thrown when a second scheduler tries to open a work store that a scheduler already runs on.</summary>
public sealed class WorkStoreLockedException : IOException
{
    internal WorkStoreLockedException(string path, Exception inner)
        : base(
            $"The work store '{path}' is already opened by a running scheduler (its lock file '{path}.lock' is held). " +
            "Only one scheduler may run per store; open this one with WorkManagerOptions.EnqueueOnly = true to enqueue, query and cancel.",
            inner)
    {
        StorePath = path;
    }

    /// <summary>Gets the path of the store.</summary>
    public string StorePath { get; }
}
