namespace Converge.Work;

/// <summary>Wakes the loop: a batch with nothing to write but a claim (the timer fired, or a slot may be free).</summary>
internal sealed class TickOp : Op<bool>
{
    public static readonly TickOp Instance = new();

    protected override bool HasCaller => false;

    protected override ValueTask<bool> RunAsync(WorkEngine engine, long now) => new(true);
}

/// <summary>Waits for the scheduler to be idle; the loop keeps it aside rather than applying it.</summary>
internal sealed class IdleOp : Op<bool>
{
    public new TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override bool HasCaller => false;

    /// <summary>A stopped scheduler runs nothing more: it is idle.</summary>
    /// <param name="e">Why the loop stopped.</param>
    public override void Fail(Exception e) => Completion.TrySetResult();

    protected override ValueTask<bool> RunAsync(WorkEngine engine, long now) => new(true);
}

/// <summary>The device state changed: runs whose constraints no longer hold are stopped.</summary>
internal sealed class DeviceOp(DeviceState state) : Op<bool>
{
    protected override bool HasCaller => false;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        await engine.OnDeviceAsync(state, now).ConfigureAwait(false);
        return true;
    }
}

/// <summary>Another process or node wrote to the store: it may have cancelled work that runs here.</summary>
internal sealed class WakeOp : Op<bool>
{
    public static readonly WakeOp Instance = new();

    protected override bool HasCaller => false;

    protected override async ValueTask<bool> RunAsync(WorkEngine engine, long now)
    {
        await engine.OnWakeAsync(now).ConfigureAwait(false);
        return true;
    }
}

/// <summary>Stops every run (each is enqueued again) and the claims; the result is how many runs were stopped.</summary>
internal sealed class ShutdownOp : Op<int>
{
    public override bool ChangesSchedule => true;

    protected override ValueTask<int> RunAsync(WorkEngine engine, long now) => engine.ShutdownAsync(now);
}
