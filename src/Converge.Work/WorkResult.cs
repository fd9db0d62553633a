namespace Converge.Work;

/// <summary>What a run of a work item came to: success, failure, or a request to retry. A closed set.</summary>
public abstract class WorkResult
{
    private static readonly WorkResult s_success = new SuccessResult(WorkData.Empty);
    private static readonly WorkResult s_failure = new FailureResult(WorkData.Empty);
    private static readonly WorkResult s_retry = new RetryResult();

    private WorkResult(WorkData output) => Output = output;

    /// <summary>Gets the output data of the run.</summary>
    public WorkData Output { get; }

    /// <summary>The work succeeded; dependents may run, and <paramref name="output"/> becomes their input.</summary>
    /// <param name="output">The output data.</param>
    /// <returns>The result.</returns>
    public static WorkResult Success(WorkData? output = null) => output is null || output.IsEmpty ? s_success : new SuccessResult(output);

    /// <summary>The work failed for good; its dependents fail too. Periodic work runs again next period.</summary>
    /// <param name="output">The output data.</param>
    /// <returns>The result.</returns>
    public static WorkResult Failure(WorkData? output = null) => output is null || output.IsEmpty ? s_failure : new FailureResult(output);

    /// <summary>Run the work again after its backoff delay.</summary>
    /// <returns>The result.</returns>
    public static WorkResult Retry() => s_retry;

    /// <summary>The successful result.</summary>
    public sealed class SuccessResult : WorkResult
    {
        internal SuccessResult(WorkData output)
            : base(output)
        {
        }

        /// <inheritdoc />
        public override string ToString() => "Success";
    }

    /// <summary>The failed result.</summary>
    public sealed class FailureResult : WorkResult
    {
        internal FailureResult(WorkData output)
            : base(output)
        {
        }

        /// <inheritdoc />
        public override string ToString() => "Failure";
    }

    /// <summary>The retry result.</summary>
    public sealed class RetryResult : WorkResult
    {
        internal RetryResult()
            : base(WorkData.Empty)
        {
        }

        /// <inheritdoc />
        public override string ToString() => "Retry";
    }
}
