using System.Collections.Concurrent;
using System.Text;
using Converge.Work.Testing;

namespace Converge.Work.Tests.Model;

/// <summary>
/// Runs a generated sequence against a real <see cref="WorkManager"/> (a SQLite file in a temp folder, a fake clock, a
/// hand-set device state) and against <see cref="SchedulerModel"/> in lockstep, and after each step compares what the
/// public API shows with what the model predicts.
/// </summary>
/// <remarks>
/// Workers return at once, except held ones, which wait for the test to release them or for their stop token. After each
/// step the test waits until the scheduler is idle, or, while the model has held work running, until the scheduler shows
/// what the model predicts (through the live stream, so never by sleeping). The clock moves only in the steps that advance
/// it, and then to each time the model expects work to fall due or a run to time out, one at a time, so what runs never
/// depends on how far one jump of the fake clock goes.
/// </remarks>
internal sealed class SchedulerHarness : IAsyncDisposable
{
    private const string CombineWorker = "converge.combine";
    private static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>How long to wait for the scheduler to settle before reporting what differs; it settles in milliseconds.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    /// <summary>The wait while cutting a failing sequence down, where most runs fail; the result is checked with <see cref="Patience"/>.</summary>
    private static readonly TimeSpan ShortPatience = TimeSpan.FromSeconds(1);

    private readonly string _directory = Directory.CreateTempSubdirectory("converge-work-model-").FullName;
    private readonly SchedulerModel _model = new(Start.ToUnixTimeMilliseconds());
    private readonly Dictionary<int, Guid> _ids = [];
    private readonly Dictionary<Guid, string> _names = [];
    private readonly Dictionary<int, (WorkRequest Request, WorkDefinition Definition)> _requests = [];
    private readonly ConcurrentQueue<ExpectedRun> _runs = new();
    private readonly ConcurrentDictionary<(Guid Id, int Attempt), HeldRun> _held = new();
    private readonly List<string> _applied = [];
    private readonly bool _fewSlots;
    private readonly TimeSpan _bound;
    private WorkTestHost? _host;
    private string _step = "the start";

    private SchedulerHarness(bool fewSlots, TimeSpan bound)
    {
        _fewSlots = fewSlots;
        _bound = bound;
    }

    private WorkTestHost Host => _host ?? throw new InvalidOperationException("The scheduler is not open.");

    private WorkManager Manager => Host.Manager;

    /// <summary>Runs a scenario; returns the step that failed and why, or <see langword="null"/> when the two agree throughout.</summary>
    public static async Task<(int Step, Exception Error)?> RunAsync(Scenario scenario, bool shortPatience = false)
    {
        var step = 0;
        try
        {
            await using var harness = new SchedulerHarness(scenario.FewSlots, shortPatience ? ShortPatience : Patience);
            harness._host = await harness.OpenAsync();
            for (; step < scenario.Steps.Length; step++)
            {
                await harness.ApplyAsync(scenario.Steps[step], step + 1);
            }

            step--;
            await harness.CheckQueriesAsync();
            return null;
        }
        catch (Exception e)
        {
            return (Math.Min(step, scenario.Steps.Length - 1), e);
        }
    }

    /// <summary>
    /// Makes a failing scenario small enough to read: drops the steps after the failing one, then each step whose removal
    /// still leaves a failure, until none can go.
    /// </summary>
    public static async Task<(Scenario Scenario, Exception Error)> MinimizeAsync(Scenario scenario, int failedStep, Exception failure)
    {
        var steps = scenario.Steps[..(failedStep + 1)];
        for (var changed = true; changed;)
        {
            changed = false;
            for (var i = steps.Length - 1; i >= 0; i--)
            {
                if (i >= steps.Length)
                {
                    continue;
                }

                var candidate = steps.Where((_, j) => j != i).ToArray();
                if (candidate.Length > 0 && await RunAsync(scenario with { Steps = candidate }, shortPatience: true) is { } result)
                {
                    steps = candidate[..(result.Step + 1)];
                    changed = true;
                }
            }
        }

        // Confirmed with the usual patience; if the cut-down sequence passes with it, the original prefix is the answer.
        var smallest = scenario with { Steps = steps };
        return await RunAsync(smallest) is { } confirmed
            ? (smallest, confirmed.Error)
            : (scenario with { Steps = scenario.Steps[..(failedStep + 1)] }, failure);
    }

    /// <summary>Applies a step to both, waits until the scheduler settles, and compares.</summary>
    public async Task ApplyAsync(Step step, int number)
    {
        _step = $"step {number} ({step})";
        _applied.Add(step.ToString()!);
        switch (step)
        {
            case Enqueue e:
                await EnqueueChainAsync(e.Chain, null, ExistingWorkPolicy.Keep);
                break;
            case EnqueueUnique u:
                await EnqueueChainAsync(u.Chain, u.Name, u.Policy);
                break;
            case Combine c:
                await CombineAsync(c);
                break;
            case EnqueuePeriodic p:
                var periodic = Request(p.Work);
                await Manager.EnqueueAsync(periodic);
                _model.EnqueuePeriodic(periodic.Id, _requests[p.Work.Work.Label].Definition);
                break;
            case EnqueueUniquePeriodic p:
                await EnqueueUniquePeriodicAsync(p);
                break;
            case EnqueueAgain e:
                await EnqueueAgainAsync(e);
                break;
            case CancelById c:
                var id = IdOf(c.Target);
                Expect("cancelled count", _model.Cancel(w => w.Id == id), await Manager.CancelWorkByIdAsync(id));
                break;
            case CancelByTag c:
                Expect("cancelled count", _model.Cancel(w => w.Definition.Tags.Contains(c.Tag)), await Manager.CancelAllWorkByTagAsync(c.Tag));
                break;
            case CancelUnique c:
                Expect("cancelled count", _model.Cancel(w => w.UniqueName == c.Name), await Manager.CancelUniqueWorkAsync(c.Name));
                break;
            case CancelAll:
                Expect("cancelled count", _model.Cancel(_ => true), await Manager.CancelAllWorkAsync());
                break;
            case Prune:
                Expect("pruned count", _model.Prune(), await Manager.PruneWorkAsync());
                break;
            case Advance a:
                await AdvanceAsync(a.By);
                break;
            case ChangeDevice d:
                var state = d.Apply(_model.Device);
                Host.Device.Set(state);
                _model.SetDevice(state);
                break;
            case Restart:
                await Host.DisposeAsync();
                _host = null;
                _host = await OpenAsync();
                _model.Restart();
                break;
            case Drive d:
                await DriveAsync(d);
                break;
            case Release r:
                ReleaseHeld(r);
                break;
            default:
                throw new InvalidOperationException($"Unknown step {step}.");
        }

        await SettleAsync();
        await CheckAsync("");
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }

    private Task<WorkTestHost> OpenAsync() => WorkTestHost.StartAsync(
        registry => registry.ExecuteTask(WorkAsync),
        o =>
        {
            o.DatabasePath = Path.Combine(_directory, "work.db");
            // Two slots: due work often waits for a free one. Held work needs a slot for every work instead: otherwise which
            // due work gets the last slot would depend on when results arrive.
            o.MaxConcurrency = _fewSlots ? 2 : 1000;
            o.ExecutionTimeout = SchedulerModel.ExecutionTimeout;
            o.KeepFinishedWorkFor = SchedulerModel.KeepFinishedWorkFor;
            o.MinimumBackoffDelay = SchedulerModel.MinimumBackoffDelay;
            o.MinimumPeriodicInterval = SchedulerModel.MinimumPeriodicInterval;
            o.MinimumPeriodicFlex = SchedulerModel.MinimumPeriodicFlex;
        },
        start: DateTimeOffset.FromUnixTimeMilliseconds(_model.Now));

    /// <summary>Every worker: records the run, then returns the plan's letter for this attempt, or holds until released.</summary>
    private async Task<WorkResult> WorkAsync(WorkContext context)
    {
        var label = context.InputData.GetInt64("k");
        var plan = context.InputData.GetString("plan") ?? "S";
        var attempt = context.RunAttemptCount;
        _runs.Enqueue(new ExpectedRun((int)label, attempt, context.InputData.ToJson()));
        var letter = plan[Math.Min(attempt, plan.Length - 1)];
        if (letter == 'H')
        {
            var held = Held(context.Id, attempt);
            try
            {
                held.Started.TrySetResult();
                letter = await held.Result.Task.WaitAsync(context.StopToken);
            }
            finally
            {
                // Gone before the result is stored, so the next run with the same attempt count (next period) is a new one.
                _held.TryRemove(new((context.Id, attempt), held));
            }
        }

        return letter switch
        {
            'S' => WorkResult.Success(WorkData.From(($"o{label}", (long)attempt))),
            'F' => WorkResult.Failure(WorkData.From(($"f{label}", (long)attempt))),
            'R' => WorkResult.Retry(),
            _ => throw new InvalidOperationException($"boom {label}"),
        };
    }

    private HeldRun Held(Guid id, int attempt) => _held.GetOrAdd((id, attempt), _ => new HeldRun());

    /// <summary>Waits until the scheduler is idle, or, with held work running, until it shows what the model predicts.</summary>
    private async Task SettleAsync()
    {
        var running = _model.Running.ToList();
        if (running.Count == 0)
        {
            try
            {
                await Host.RunUntilIdleAsync().WaitAsync(_bound);
            }
            catch (TimeoutException)
            {
                await CheckAsync($", waiting {_bound.TotalSeconds} s for the scheduler to be idle");
                Assert.Fail($"After {_step}: the scheduler did not become idle within {_bound.TotalSeconds} s.{Environment.NewLine}{Dump()}");
            }

            return;
        }

        try
        {
            // All writes go through one queue in order, so a write that changes nothing, queued after everything the step
            // caused (a device change, a timer, a stop), returns once all of that has been applied.
            await Manager.CancelWorkByIdAsync(Guid.NewGuid()).WaitAsync(_bound);
            foreach (var work in running)
            {
                await Held(work.Id, work.RunAttempt).Started.Task.WaitAsync(_bound);
            }

            using var timeout = new CancellationTokenSource(_bound);
            await foreach (var infos in Manager.WatchWorkInfosAsync(WorkQuery.All, timeout.Token))
            {
                if (Differences(infos).Count == 0)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // Not what the model predicts after a wait far longer than the scheduler needs: the check reports what differs.
        }
    }

    private void ReleaseHeld(Release r)
    {
        var running = _model.Running.ToList();
        if (running.Count == 0)
        {
            _applied[^1] = $"release a held work with {r.Result}: none runs";
            return;
        }

        var work = running[r.Which % running.Count];
        _applied[^1] = $"release {work.Name} with {r.Result}";
        _step = $"step {_applied.Count} ({_applied[^1]})";
        if (_held.TryGetValue((work.Id, work.RunAttempt), out var held))
        {
            held.Result.TrySetResult(r.Result);
        }

        _model.Release(work.Id, r.Result);
    }

    // ---- steps ----

    private async Task EnqueueChainAsync(WorkSpec[][] chain, string? name, ExistingWorkPolicy policy)
    {
        var requests = Requests(chain);
        var nodes = Nodes(chain, requests, 0, name, policy);
        UniqueWorkOutcome actual;
        if (name is null && requests.Length == 1)
        {
            await Manager.EnqueueAsync(requests[0]);
            actual = UniqueWorkOutcome.Enqueued;
        }
        else if (name is not null && requests.Length == 1 && requests[0].Length == 1)
        {
            actual = await Manager.EnqueueUniqueWorkAsync(name, policy, requests[0][0]);
        }
        else
        {
            var continuation = name is null ? Manager.BeginWith(requests[0]) : Manager.BeginUniqueWork(name, policy, requests[0]);
            foreach (var step in requests.Skip(1))
            {
                continuation = continuation.Then(step);
            }

            actual = await continuation.EnqueueAsync();
        }

        Expect("outcome", _model.EnqueueChain(nodes), actual);
    }

    private async Task CombineAsync(Combine c)
    {
        var left = Requests(c.Left);
        var right = Requests(c.Right);
        var then = c.Then is null ? null : Request(c.Then);
        var combined = WorkContinuation.Combine(Continuation(left, c.LeftName, c.LeftPolicy), Continuation(right, null, ExistingWorkPolicy.Keep));
        var whole = then is null ? combined : combined.Then(then);
        var joinId = whole.Ids.Single(id => !_names.ContainsKey(id));
        Name(c.JoinLabel, joinId, $"join #{c.JoinLabel}");

        var nodes = Nodes(c.Left, left, 0, c.LeftName, c.LeftPolicy);
        nodes.AddRange(Nodes(c.Right, right, nodes.Count, null, ExistingWorkPolicy.Keep));
        var join = new WorkDefinition(
            c.JoinLabel,
            CombineWorker,
            new HashSet<string> { CombineWorker },
            WorkData.Empty,
            Constraints.None,
            TimeSpan.Zero,
            BackoffPolicy.Exponential,
            OneTimeWorkRequestBuilder.DefaultBackoffDelay,
            null,
            null,
            IsJoin: true);
        nodes.Add(new ChainNode([(joinId, join)], [c.Left.Length - 1, nodes.Count - 1], null, ExistingWorkPolicy.Keep));
        if (c.Then is not null)
        {
            nodes.Add(new ChainNode([(then!.Id, Definition(c.Then))], [nodes.Count - 1], null, ExistingWorkPolicy.Keep));
        }

        Expect("outcome", _model.EnqueueChain(nodes), await whole.EnqueueAsync());

        WorkContinuation Continuation(OneTimeWorkRequest[][] chain, string? name, ExistingWorkPolicy policy)
        {
            var continuation = name is null ? Manager.BeginWith(chain[0]) : Manager.BeginUniqueWork(name, policy, chain[0]);
            foreach (var step in chain.Skip(1))
            {
                continuation = continuation.Then(step);
            }

            return continuation;
        }
    }

    private async Task EnqueueAgainAsync(EnqueueAgain e)
    {
        if (!_requests.TryGetValue(e.Target, out var again))
        {
            _applied[^1] += " (no request of its own: nothing to do)";
            return;
        }

        bool accepted;
        try
        {
            await Manager.EnqueueAsync(again.Request);
            accepted = true;
        }
        catch (InvalidOperationException)
        {
            accepted = false;
        }

        Expect("enqueue accepted", _model.EnqueueAgain(again.Request.Id, again.Definition), accepted);
    }

    private async Task EnqueueUniquePeriodicAsync(EnqueueUniquePeriodic p)
    {
        var request = Request(p.Work);
        UniqueWorkOutcome? actual;
        try
        {
            actual = await Manager.EnqueueUniquePeriodicWorkAsync(p.Name, p.Policy, request);
        }
        catch (InvalidOperationException)
        {
            actual = null;
        }

        Expect("outcome (none: refused)", _model.EnqueueUniquePeriodic(p.Name, p.Policy, request.Id, _requests[p.Work.Work.Label].Definition), actual);
    }

    private async Task AdvanceAsync(TimeSpan by)
    {
        var target = _model.Now + (long)by.TotalMilliseconds;
        while (true)
        {
            var to = _model.NextDue() is { } due && due < target ? due : target;
            Host.Time.Advance(TimeSpan.FromMilliseconds(to - _model.Now));
            _model.AdvanceTo(to);
            if (to == target)
            {
                return;
            }

            await SettleAsync();
            await CheckAsync($" at {Clock(to)}");
        }
    }

    private async Task DriveAsync(Drive d)
    {
        var id = IdOf(d.Target);
        var expected = d.Call switch
        {
            DriverCall.AllConstraintsMet => _model.SetAllConstraintsMet(id),
            DriverCall.InitialDelayMet => _model.SetInitialDelayMet(id),
            _ => _model.SetPeriodDelayMet(id),
        };
        bool actual;
        try
        {
            await (d.Call switch
            {
                DriverCall.AllConstraintsMet => Host.Driver.SetAllConstraintsMetAsync(id),
                DriverCall.InitialDelayMet => Host.Driver.SetInitialDelayMetAsync(id),
                _ => Host.Driver.SetPeriodDelayMetAsync(id),
            });
            actual = true;
        }
        catch (ArgumentException)
        {
            actual = false;
        }

        Expect("driver accepted the call", expected, actual);
    }

    // ---- requests ----

    private OneTimeWorkRequest[][] Requests(WorkSpec[][] chain) => chain.Select(step => step.Select(Request).ToArray()).ToArray();

    private OneTimeWorkRequest Request(WorkSpec w)
    {
        var builder = new OneTimeWorkRequestBuilder(w.Worker)
            .SetInputData(Input(w))
            .SetInitialDelay(w.Delay)
            .SetBackoffCriteria(w.Backoff, w.BackoffDelay)
            .SetConstraints(w.Constraints);
        foreach (var tag in w.Tags)
        {
            builder.AddTag(tag);
        }

        var request = builder.Build();
        Name(w.Label, request.Id, $"#{w.Label}");
        _requests[w.Label] = (request, Definition(w));
        return request;
    }

    private PeriodicWorkRequest Request(PeriodicSpec p)
    {
        var w = p.Work;
        var builder = (p.Flex is { } flex ? new PeriodicWorkRequestBuilder(w.Worker, p.Interval, flex) : new PeriodicWorkRequestBuilder(w.Worker, p.Interval))
            .SetInputData(Input(w))
            .SetInitialDelay(w.Delay)
            .SetBackoffCriteria(w.Backoff, w.BackoffDelay)
            .SetConstraints(w.Constraints);
        foreach (var tag in w.Tags)
        {
            builder.AddTag(tag);
        }

        var request = builder.Build();
        Name(w.Label, request.Id, $"#{w.Label}");
        _requests[w.Label] = (request, Definition(w, p));
        return request;
    }

    private static WorkData Input(WorkSpec w) => WorkData.From(("k", (long)w.Label), ("plan", w.Plan));

    private static WorkDefinition Definition(WorkSpec w, PeriodicSpec? periodic = null) => new(
        w.Label,
        w.Worker,
        new HashSet<string>(w.Tags) { w.Worker },
        Input(w),
        w.Constraints,
        w.Delay,
        w.Backoff,
        w.BackoffDelay,
        periodic?.Interval,
        periodic?.Flex,
        IsJoin: false);

    /// <summary>The model's steps of a sequential chain placed at <paramref name="offset"/>: each step follows the one before.</summary>
    private static List<ChainNode> Nodes(WorkSpec[][] chain, OneTimeWorkRequest[][] requests, int offset, string? name, ExistingWorkPolicy policy) =>
        chain.Select((step, i) => new ChainNode(
            step.Select((w, j) => (requests[i][j].Id, Definition(w))).ToList(),
            i == 0 ? [] : [offset + i - 1],
            name,
            i == 0 ? policy : ExistingWorkPolicy.Keep)).ToList();

    /// <summary>The id of a label; a fresh id for 0, or for a label whose step a minimized sequence dropped.</summary>
    private Guid IdOf(int label) => _ids.TryGetValue(label, out var id) ? id : Guid.NewGuid();

    private void Name(int label, Guid id, string name)
    {
        _ids[label] = id;
        _names[id] = name;
    }

    // ---- comparison ----

    private void Expect<T>(string what, T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            Assert.Fail($"After {_step}: {what}: expected {Show(expected)}, actual {Show(actual)}.{Environment.NewLine}{Dump()}");
        }
    }

    private async Task CheckAsync(string when)
    {
        var diffs = new List<string>();
        var clock = Host.Time.GetUtcNow().ToUnixTimeMilliseconds();
        if (clock != _model.Now)
        {
            diffs.Add($"clock: expected {Clock(_model.Now)}, actual {Clock(clock)}");
        }

        var expectedRuns = _model.TakeRuns().Select(r => r.ToString()).Order(StringComparer.Ordinal).ToList();
        var actualRuns = new List<string>();
        while (_runs.TryDequeue(out var run))
        {
            actualRuns.Add(run.ToString());
        }

        actualRuns.Sort(StringComparer.Ordinal);
        if (!expectedRuns.SequenceEqual(actualRuns))
        {
            diffs.Add($"runs: expected [{string.Join("; ", expectedRuns)}], actual [{string.Join("; ", actualRuns)}]");
        }

        diffs.AddRange(Differences(await Manager.GetWorkInfosAsync(WorkQuery.All)));
        if (diffs.Count > 0)
        {
            Assert.Fail($"After {_step}{when}:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", diffs)}{Environment.NewLine}{Dump()}");
        }
    }

    private List<string> Differences(IReadOnlyList<WorkInfo> all)
    {
        var diffs = new List<string>();
        var infos = all.ToDictionary(i => i.Id);
        foreach (var work in _model.Works.Values.OrderBy(w => w.Seq))
        {
            if (!infos.Remove(work.Id, out var info))
            {
                diffs.Add($"{work.Name}: expected {work.State}, but the scheduler has no such work");
                continue;
            }

            Compare(work, info, diffs);
        }

        foreach (var info in infos.Values)
        {
            diffs.Add($"{NameOf(info.Id)}: expected no such work, but the scheduler has it, {info.State}");
        }

        return diffs;
    }

    /// <summary>Queries by tag, unique name, state, id and combinations match the model's works, oldest first.</summary>
    private async Task CheckQueriesAsync()
    {
        _step = "the last step, querying";
        var some = _model.Works.Keys.Take(3).Append(Guid.NewGuid()).ToArray();
        var queries = new List<WorkQuery>
        {
            WorkQuery.ForIds(some),
            new() { Tags = ["red", "alpha"], States = [WorkState.Enqueued, WorkState.Blocked, WorkState.Running] },
            new() { UniqueNames = ["u1", "p1"], Tags = ["blue"] },
        };
        queries.AddRange(new[] { "red", "blue", "alpha", "beta", CombineWorker }.Select(t => WorkQuery.ForTags(t)));
        queries.AddRange(SchedulerSteps.OneTimeNames.Concat(["p1", "p2"]).Select(n => WorkQuery.ForUniqueNames(n)));
        queries.AddRange(Enum.GetValues<WorkState>().Select(state => WorkQuery.ForStates(state)));
        foreach (var query in queries)
        {
            var expected = _model.Works.Values
                .Where(w => query.Ids.Count == 0 || query.Ids.Contains(w.Id))
                .Where(w => query.Tags.Count == 0 || query.Tags.Any(w.Definition.Tags.Contains))
                .Where(w => query.UniqueNames.Count == 0 || (w.UniqueName is { } name && query.UniqueNames.Contains(name)))
                .Where(w => query.States.Count == 0 || query.States.Contains(w.State))
                .OrderBy(w => w.Seq)
                .Select(w => w.Name);
            var actual = (await Manager.GetWorkInfosAsync(query)).Select(i => NameOf(i.Id));
            Expect(
                $"works matching ids [{string.Join(", ", query.Ids.Select(NameOf))}] tags [{string.Join(", ", query.Tags)}] " +
                $"names [{string.Join(", ", query.UniqueNames)}] states [{string.Join(", ", query.States)}]",
                string.Join(", ", expected),
                string.Join(", ", actual));
        }
    }

    private void Compare(ModelWork work, WorkInfo info, List<string> diffs)
    {
        Field("state", work.State, info.State);
        Field("run attempt count", work.RunAttemptCount, info.RunAttemptCount);
        Field("period count", work.PeriodCount, info.PeriodCount);
        Field("generation", work.Generation, info.Generation);
        Field(
            "next schedule time",
            work.State == WorkState.Enqueued ? Clock(work.NextRunAt) : "none",
            info.NextScheduleTime is { } next ? Clock(next.ToUnixTimeMilliseconds()) : "none");
        Field("output", work.Output.ToJson(), info.OutputData.ToJson());
        Field("worker", work.Definition.WorkerName, info.WorkerName);
        Field("tags", string.Join(",", work.Definition.Tags.Order(StringComparer.Ordinal)), string.Join(",", info.Tags.Order(StringComparer.Ordinal)));
        Field("unique name", work.UniqueName, info.UniqueName);
        Field("initial delay", work.Definition.InitialDelay, info.InitialDelay);
        Field("constraints", work.Definition.Constraints, info.Constraints);
        Field("periodicity", work.IsPeriodic ? new PeriodicityInfo(work.Interval, work.Flex) : null, info.Periodicity);
        Field("stop reason", work.StopReason, info.StopReason);
        if (work.FailedByPrerequisite)
        {
            // Which failed prerequisite the reason names depends on the order the failure reached it: any of them will do.
            if (!work.FailureCandidates.Any(id => info.FailureReason == $"Prerequisite {id} failed."))
            {
                diffs.Add($"{work.Name} failure reason: expected \"Prerequisite <one of {string.Join(", ", work.FailureCandidates.Select(NameOf))}> failed.\", actual {Show(info.FailureReason)}");
            }
        }
        else
        {
            Field("failure reason", work.FailureReason, info.FailureReason);
        }

        void Field<T>(string field, T expected, T actual)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
            {
                diffs.Add($"{work.Name} {field}: expected {Show(expected)}, actual {Show(actual)}");
            }
        }
    }

    private string Dump()
    {
        var text = new StringBuilder($"Steps ({(_fewSlots ? "2 slots" : "a slot for every work")}):");
        for (var i = 0; i < _applied.Count; i++)
        {
            text.AppendLine().Append($"  {i + 1,2}. {_applied[i]}");
        }

        text.AppendLine().Append($"Model at {Clock(_model.Now)}, {Device(_model.Device)}:");
        foreach (var w in _model.Works.Values.OrderBy(w => w.Seq))
        {
            text.AppendLine().Append($"  {w.Name} {w.Definition.WorkerName} {w.State}");
            if (w.Definition.Label != w.Label)
            {
                text.Append($" (updated to #{w.Definition.Label}'s definition)");
            }

            if (w.UniqueName is not null)
            {
                text.Append($" '{w.UniqueName}'");
            }

            text.Append($", attempts {w.RunAttemptCount}, periods {w.PeriodCount}, generation {w.Generation}");
            if (w.State == WorkState.Enqueued)
            {
                text.Append($", next {Clock(w.NextRunAt)}");
            }

            if (w.StopReason != StopReason.NotStopped)
            {
                text.Append($", stopped {w.StopReason}");
            }

            if (w.Prerequisites.Count > 0)
            {
                text.Append($", after {string.Join(", ", w.Prerequisites.Select(NameOf))}");
            }

            text.Append($", output {w.Output.ToJson()}");
        }

        return text.ToString();
    }

    private static string Device(DeviceState d) =>
        $"network {SchedulerSteps.Networks.First(n => n.State == d.Network).Name}, {(d.IsCharging ? "charging" : "not charging")}, " +
        $"battery {(d.IsBatteryLow ? "low" : "ok")}, storage {(d.IsStorageLow ? "low" : "ok")}, {(d.IsIdle ? "idle" : "busy")}";

    private string NameOf(Guid id) => _names.TryGetValue(id, out var name) ? name : id.ToString();

    private static string Clock(long ms) => "+" + SchedulerSteps.Time(TimeSpan.FromMilliseconds(ms - Start.ToUnixTimeMilliseconds()));

    private static string Show<T>(T value) => value is null ? "none" : value.ToString()!;

    /// <summary>A run that holds until the test gives it a result.</summary>
    private sealed class HeldRun
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<char> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
