namespace Converge.Protocol.Tests;

/// <summary>A wall clock a test sets freely, backwards too, as real wall clocks do when they are corrected.</summary>
internal sealed class WallClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Move(TimeSpan delta) => Now += delta;
}
