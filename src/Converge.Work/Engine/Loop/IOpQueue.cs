namespace Converge.Work;

/// <summary>Where the parts outside the loop (timers, workers, device and store notices) send their ops.</summary>
internal interface IOpQueue
{
    /// <summary>Queues an op nobody awaits; if the loop has stopped, the op is failed at once.</summary>
    /// <param name="op">The op.</param>
    void Post(Op op);

    /// <summary>Queues an op and waits until its batch commits.</summary>
    /// <param name="op">The op.</param>
    /// <param name="cancellationToken">Ends the wait; the op is still applied.</param>
    /// <typeparam name="T">The op's result.</typeparam>
    /// <returns>The op's result.</returns>
    Task<T> SubmitAsync<T>(Op<T> op, CancellationToken cancellationToken);
}
