namespace Converge.Work.Tests.Scheduling;

public class WorkScheduleTests
{
    private static readonly TimeSpan Thirty = TimeSpan.FromSeconds(30);

    [Fact]
    public void Interval_below_the_minimum_is_raised_to_it()
    {
        Assert.Equal(TimeSpan.FromMinutes(15), WorkSchedule.ClampInterval(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(15)));
        Assert.Equal(TimeSpan.FromMinutes(20), WorkSchedule.ClampInterval(TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(15)));
        Assert.Equal(TimeSpan.FromSeconds(2), WorkSchedule.ClampInterval(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void Flex_is_clamped_to_five_minutes_and_the_interval()
    {
        var five = TimeSpan.FromMinutes(5);
        var hour = TimeSpan.FromHours(1);
        Assert.Equal(five, WorkSchedule.ClampFlex(TimeSpan.FromMinutes(1), hour, five));
        Assert.Equal(hour, WorkSchedule.ClampFlex(TimeSpan.FromHours(2), hour, five));
        Assert.Equal(TimeSpan.FromMinutes(10), WorkSchedule.ClampFlex(TimeSpan.FromMinutes(10), hour, five));
        // An interval lowered below the flex floor bounds the flex instead.
        Assert.Equal(TimeSpan.FromMinutes(2), WorkSchedule.ClampFlex(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(2), five));
    }

    [Fact]
    public void Backoff_delay_is_clamped_to_ten_seconds_and_five_hours()
    {
        var ten = TimeSpan.FromSeconds(10);
        Assert.Equal(ten, WorkSchedule.ClampBackoff(TimeSpan.FromSeconds(1), ten));
        Assert.Equal(TimeSpan.FromHours(5), WorkSchedule.ClampBackoff(TimeSpan.FromHours(6), ten));
        Assert.Equal(Thirty, WorkSchedule.ClampBackoff(Thirty, ten));
    }

    [Theory]
    [InlineData(1, 30)]
    [InlineData(2, 60)]
    [InlineData(3, 120)]
    [InlineData(10, 15_360)] // 30 s × 2^9 = 4 h 16 min, under the cap
    [InlineData(11, 18_000)] // 30 s × 2^10 = 8 h 32 min, capped at 5 h
    [InlineData(100, 18_000)]
    public void Exponential_backoff_doubles_per_attempt_up_to_five_hours(int attempts, int expectedSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), WorkSchedule.BackoffDelay(BackoffPolicy.Exponential, Thirty, attempts));

    [Theory]
    [InlineData(1, 30)]
    [InlineData(2, 60)]
    [InlineData(10, 300)]
    [InlineData(11, 330)]
    [InlineData(1_000, 18_000)]
    public void Linear_backoff_grows_by_the_delay_per_attempt_up_to_five_hours(int attempts, int expectedSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), WorkSchedule.BackoffDelay(BackoffPolicy.Linear, Thirty, attempts));

    [Fact]
    public void One_time_work_runs_at_enqueue_plus_initial_delay()
    {
        var next = WorkSchedule.NextRunTime(false, 1_000, 0, 0, BackoffPolicy.Exponential, Thirty, TimeSpan.FromSeconds(5), TimeSpan.Zero, TimeSpan.Zero);
        Assert.Equal(6_000, next);
    }

    [Fact]
    public void Backed_off_work_runs_at_last_enqueue_plus_backoff()
    {
        var next = WorkSchedule.NextRunTime(false, 1_000, 3, 0, BackoffPolicy.Exponential, Thirty, TimeSpan.FromSeconds(5), TimeSpan.Zero, TimeSpan.Zero);
        Assert.Equal(1_000 + 120_000, next);
    }

    [Fact]
    public void Periodic_first_run_falls_in_the_flex_window_later_runs_at_end_plus_interval()
    {
        var hour = TimeSpan.FromHours(1);
        var flex = TimeSpan.FromMinutes(15);
        var delay = TimeSpan.FromMinutes(1);
        Assert.Equal(60_000 + 45 * 60_000, WorkSchedule.NextRunTime(true, 0, 0, 0, BackoffPolicy.Exponential, Thirty, delay, hour, flex));
        Assert.Equal(60_000, WorkSchedule.NextRunTime(true, 0, 0, 0, BackoffPolicy.Exponential, Thirty, delay, hour, hour));
        Assert.Equal(5_000 + 3_600_000, WorkSchedule.NextRunTime(true, 5_000, 0, 1, BackoffPolicy.Exponential, Thirty, delay, hour, flex));
    }
}
