namespace Converge.Work.Tests.Requests;

public class WorkRequestBuilderTests
{
    [Fact]
    public void Expedited_work_with_an_initial_delay_is_rejected_at_build()
    {
        var builder = new OneTimeWorkRequestBuilder("w").SetExpedited(OutOfQuotaPolicy.RunAsNonExpeditedWorkRequest).SetInitialDelay(TimeSpan.FromSeconds(1));
        var e = Assert.Throws<InvalidOperationException>(() => builder.Build());
        Assert.Contains("initial delay", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, false, false)]
    [InlineData(false, true, false)]
    [InlineData(false, false, true)]
    public void Expedited_work_accepts_only_network_and_storage_constraints(bool charging, bool batteryNotLow, bool idle)
    {
        var builder = new OneTimeWorkRequestBuilder("w")
            .SetExpedited(OutOfQuotaPolicy.DropWorkRequest)
            .SetConstraints(new Constraints(NetworkType.Connected, charging, batteryNotLow, RequiresStorageNotLow: true, idle));
        Assert.Throws<InvalidOperationException>(() => builder.Build());
    }

    [Fact]
    public void Expedited_work_with_network_and_storage_constraints_builds()
    {
        var request = new OneTimeWorkRequestBuilder("w")
            .SetExpedited(OutOfQuotaPolicy.DropWorkRequest)
            .SetConstraints(new Constraints(NetworkType.Unmetered, RequiresStorageNotLow: true))
            .Build();
        Assert.True(request.IsExpedited);
        Assert.Equal(OutOfQuotaPolicy.DropWorkRequest, request.OutOfQuotaPolicy);
    }

    [Fact]
    public void Invalid_arguments_are_rejected_where_they_are_given()
    {
        Assert.Throws<ArgumentException>(() => new OneTimeWorkRequestBuilder(" "));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OneTimeWorkRequestBuilder("w").SetInitialDelay(TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OneTimeWorkRequestBuilder("w").SetBackoffCriteria(BackoffPolicy.Linear, TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OneTimeWorkRequestBuilder("w").SetBackoffCriteria((BackoffPolicy)7, TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PeriodicWorkRequestBuilder("w", TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PeriodicWorkRequestBuilder("w", TimeSpan.FromHours(1), TimeSpan.FromSeconds(-5)));
        Assert.Throws<ArgumentException>(() => new OneTimeWorkRequestBuilder("w").AddTag(""));
        Assert.Throws<ArgumentException>(() => new OneTimeWorkRequestBuilder("w").SetId(Guid.Empty));
    }

    [Fact]
    public void Every_request_is_tagged_with_its_worker_name()
    {
        var request = new OneTimeWorkRequestBuilder("sync").AddTag("user:1").Build();
        Assert.Equal(new HashSet<string> { "sync", "user:1" }, request.Tags.ToHashSet());
    }

    [Fact]
    public void Worker_classes_need_a_stable_name()
    {
        Assert.Equal("named", OneTimeWorkRequest.From<NamedWorker>().WorkerName);
        var e = Assert.Throws<ArgumentException>(() => OneTimeWorkRequest.From<UnnamedWorker>());
        Assert.Contains("WorkerName", e.Message, StringComparison.Ordinal);
    }

    [WorkerName("named")]
    private sealed class NamedWorker : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context) => Task.FromResult(WorkResult.Success());
    }

    private sealed class UnnamedWorker : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context) => Task.FromResult(WorkResult.Success());
    }
}
