using Converge.Work.Tests.Model;
using CsCheck;

namespace Converge.Work.Tests;

/// <summary>
/// A model-based test of the scheduler: random sequences of enqueues (one-time, periodic, unique with every policy,
/// chains, combines), cancels, prunes, worker results, held runs, clock advances, device changes, test-driver calls and
/// restarts run against the real <see cref="WorkManager"/> on a SQLite file and against a small model of the semantics in
/// docs/work.md; after every step both must show the same works, states, counts, schedules, outputs and runs.
/// </summary>
/// <remarks>
/// A failure reports the smallest failing sequence CsCheck found, with the seed that reproduces it, and inside it the same
/// sequence cut down step by step to what still fails, with the model's state at the failing step. To search longer (for a
/// smaller sequence, or rarer bugs), set CsCheck_Iter or CsCheck_Time (seconds), and CsCheck_Seed, in the environment.
/// </remarks>
public sealed class SchedulerModelTests
{
    [Fact]
    public async Task Random_sequences_of_operations_leave_the_scheduler_where_the_documented_semantics_say()
    {
        var chosen = Environment.GetEnvironmentVariable("CsCheck_Iter") is not null || Environment.GetEnvironmentVariable("CsCheck_Time") is not null;
        await SchedulerSteps.Scenarios(maxLength: 30).SampleAsync(
            async scenario =>
            {
                if (await SchedulerHarness.RunAsync(scenario) is not { } failure)
                {
                    return;
                }

                var (smallest, error) = await SchedulerHarness.MinimizeAsync(scenario, failure.Step, failure.Error);
                Assert.Fail(
                    $"The scheduler and the model disagree. Smallest sequence found by removing steps ({smallest.Steps.Length} of {scenario.Steps.Length}):" +
                    $"{Environment.NewLine}{error.Message}{Environment.NewLine}");
            },
            iter: chosen ? -1 : 60,
            threads: 1,
            print: s => s.ToString());
    }
}
