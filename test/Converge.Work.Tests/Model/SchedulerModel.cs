namespace Converge.Work.Tests.Model;

/// <summary>What a test asks a work to be: the parts of a request the model needs.</summary>
/// <param name="Label">The test's number for the work; its worker reads it from the input as <c>k</c>.</param>
/// <param name="WorkerName">The worker's stable name.</param>
/// <param name="Tags">The tags, with the worker's name.</param>
/// <param name="Input">The work's own input.</param>
/// <param name="Constraints">The constraints.</param>
/// <param name="InitialDelay">The initial delay.</param>
/// <param name="BackoffPolicy">The backoff policy.</param>
/// <param name="BackoffDelay">The base backoff delay as asked for (the scheduler clamps it).</param>
/// <param name="Interval">The repeat interval as asked for, or <see langword="null"/> for one-time work.</param>
/// <param name="Flex">The flex interval as asked for; the interval when none is given.</param>
/// <param name="IsJoin">Whether this is the join work a combine adds, which passes its merged input on.</param>
internal sealed record WorkDefinition(
    int Label,
    string WorkerName,
    IReadOnlySet<string> Tags,
    WorkData Input,
    Constraints Constraints,
    TimeSpan InitialDelay,
    BackoffPolicy BackoffPolicy,
    TimeSpan BackoffDelay,
    TimeSpan? Interval,
    TimeSpan? Flex,
    bool IsJoin);

/// <summary>One step of a chain as the scheduler receives it: its works, the steps it follows, its unique name and policy.</summary>
/// <param name="Work">The works of the step, with their ids.</param>
/// <param name="Parents">Indexes of the steps it follows; a step comes after all of them in the list.</param>
/// <param name="UniqueName">The unique name of the chain, or <see langword="null"/>.</param>
/// <param name="Policy">The policy, for the first step of a unique chain.</param>
internal sealed record ChainNode(
    IReadOnlyList<(Guid Id, WorkDefinition Definition)> Work,
    IReadOnlyList<int> Parents,
    string? UniqueName,
    ExistingWorkPolicy Policy);

/// <summary>A run the model expects a worker to see: which work, which attempt, with what input.</summary>
/// <param name="Label">The work's label.</param>
/// <param name="Attempt">The run attempt count the worker sees (0 on the first run).</param>
/// <param name="Input">The merged input, as JSON.</param>
internal sealed record ExpectedRun(int Label, int Attempt, string Input)
{
    public override string ToString() => $"#{Label} attempt {Attempt} input {Input}";
}

/// <summary>A work in the model: the state <see cref="WorkInfo"/> should show, and what the schedule needs.</summary>
internal sealed class ModelWork
{
    public required Guid Id { get; init; }

    public required WorkDefinition Definition { get; set; }

    public required bool IsPeriodic { get; init; }

    public required long Seq { get; init; }

    public string? UniqueName { get; init; }

    public WorkState State { get; set; }

    public WorkData Output { get; set; } = WorkData.Empty;

    public int RunAttemptCount { get; set; }

    public int PeriodCount { get; set; }

    public int Generation { get; set; }

    public long LastEnqueueTime { get; set; }

    public long NextRunAt { get; set; }

    public TimeSpan BackoffDelay { get; set; }

    public TimeSpan Interval { get; set; }

    public TimeSpan Flex { get; set; }

    public bool ConstraintsOverridden { get; set; }

    public StopReason StopReason { get; set; }

    /// <summary>Gets or sets the input of the run in progress, which an update does not change.</summary>
    public WorkData RunInput { get; set; } = WorkData.Empty;

    /// <summary>Gets or sets the attempt count the run in progress saw.</summary>
    public int RunAttempt { get; set; }

    /// <summary>Gets or sets when the run in progress started; its execution timeout counts from then.</summary>
    public long RunStartedAt { get; set; }

    public string? FailureReason { get; set; }

    /// <summary>Gets or sets whether the work failed because a prerequisite failed (the reason names one of them).</summary>
    public bool FailedByPrerequisite { get; set; }

    /// <summary>Gets or sets the prerequisites the failure reason may name: those the work had when it failed.</summary>
    public IReadOnlyList<Guid> FailureCandidates { get; set; } = [];

    public long? FinishedAt { get; set; }

    /// <summary>Gets the ids of the works it waits for, in the order they were enqueued.</summary>
    public List<Guid> Prerequisites { get; } = [];

    /// <summary>Gets the label the work was enqueued with; an update changes the definition, not the work.</summary>
    public required int Label { get; init; }

    public string Name => Definition.IsJoin ? $"join #{Label}" : $"#{Label}";
}

/// <summary>
/// A reference model of the scheduler's state machine, written from the semantics reference in docs/work.md: states,
/// unique-work policies, chains and the propagation of failure and cancellation, periodic work, retries with backoff,
/// constraints, the test driver, pruning and restarts.
/// </summary>
/// <remarks>
/// The model runs work only when the test lets the real scheduler settle: every work due at the current time with its
/// constraints met runs, and the worker's result is the letter of its plan for that attempt (S success, F failure,
/// R retry, X throws), or, for H, it keeps running until the test releases it with a result, it is stopped, or it times
/// out. The model assumes a free slot for every due work: sequences with held work run with many slots. Time is in
/// milliseconds, as the scheduler keeps it.
/// </remarks>
internal sealed class SchedulerModel(long now)
{
    public static readonly TimeSpan MinimumBackoffDelay = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MinimumPeriodicInterval = TimeSpan.FromMinutes(15);
    public static readonly TimeSpan MinimumPeriodicFlex = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan KeepFinishedWorkFor = TimeSpan.FromHours(2);
    public static readonly TimeSpan ExecutionTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan MaximumBackoffDelay = TimeSpan.FromHours(5);

    private readonly Dictionary<Guid, ModelWork> _works = [];
    private readonly List<ExpectedRun> _runs = [];
    private long _seq;

    public long Now { get; private set; } = now;

    public DeviceState Device { get; private set; } = DeviceState.Unconstrained;

    public IReadOnlyDictionary<Guid, ModelWork> Works => _works;

    public IEnumerable<ModelWork> Running => _works.Values.Where(w => w.State == WorkState.Running).OrderBy(w => w.Seq);

    /// <summary>Returns the runs since the last call.</summary>
    public List<ExpectedRun> TakeRuns()
    {
        var runs = _runs.ToList();
        _runs.Clear();
        return runs;
    }

    // ---- enqueue ----

    /// <summary>Enqueues a chain (or a single step), as <c>WorkContinuation.EnqueueAsync</c>.</summary>
    public UniqueWorkOutcome EnqueueChain(IReadOnlyList<ChainNode> nodes)
    {
        var inserted = new Dictionary<int, List<Guid>>();
        var outcome = UniqueWorkOutcome.Enqueued;
        for (var i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            if (node.Parents.Any(p => !inserted.ContainsKey(p)))
            {
                continue; // Keep dropped what this step follows, so it is dropped too.
            }

            var prerequisites = node.Parents.SelectMany(p => inserted[p]).Distinct().ToList();
            WorkState state;
            if (prerequisites.Count == 0 && node.UniqueName is not null)
            {
                var (result, leaves, born) = ApplyExistingWorkPolicy(node.UniqueName, node.Policy);
                outcome = result;
                if (result == UniqueWorkOutcome.KeptExisting)
                {
                    continue;
                }

                prerequisites = leaves;
                state = born;
            }
            else
            {
                state = prerequisites.Count == 0 ? WorkState.Enqueued : BornState(prerequisites);
            }

            inserted[i] = [];
            foreach (var (id, definition) in node.Work)
            {
                Insert(id, definition, node.UniqueName, prerequisites, state);
                inserted[i].Add(id);
            }
        }

        Settle();
        return outcome;
    }

    /// <summary>Enqueues a request whose id may be taken; false (and nothing changes) when a work has it.</summary>
    public bool EnqueueAgain(Guid id, WorkDefinition definition)
    {
        if (_works.ContainsKey(id))
        {
            return false;
        }

        Insert(id, definition, null, [], WorkState.Enqueued);
        Settle();
        return true;
    }

    /// <summary>Enqueues periodic work without a unique name.</summary>
    public void EnqueuePeriodic(Guid id, WorkDefinition definition)
    {
        Insert(id, definition, null, [], WorkState.Enqueued);
        Settle();
    }

    /// <summary>Enqueues unique periodic work; <see langword="null"/> when the scheduler must refuse (Update on one-time work or a chain).</summary>
    public UniqueWorkOutcome? EnqueueUniquePeriodic(string name, ExistingPeriodicWorkPolicy policy, Guid id, WorkDefinition definition)
    {
        var existing = ByName(name);
        UniqueWorkOutcome outcome;
        if (policy == ExistingPeriodicWorkPolicy.Keep && existing.Any(w => w.State is WorkState.Enqueued or WorkState.Running))
        {
            return UniqueWorkOutcome.KeptExisting;
        }

        if (policy == ExistingPeriodicWorkPolicy.Update && existing.Count > 0)
        {
            if (existing.Count > 1 || !existing[0].IsPeriodic)
            {
                return null;
            }

            var current = existing[0];
            if (current.State.IsFinished())
            {
                Delete(current.Id);
                Insert(id, definition, name, [], WorkState.Enqueued);
                outcome = UniqueWorkOutcome.Enqueued;
            }
            else
            {
                // In place: same id, schedule and counts; the new definition; generation + 1.
                ApplyDefinition(current, definition);
                current.Generation++;
                if (current.State == WorkState.Enqueued)
                {
                    current.NextRunAt = NextRunTime(current);
                }

                // A running work finishes its run as it started; the update applies from the next run.
                outcome = current.State == WorkState.Running ? UniqueWorkOutcome.UpdatedForNextRun : UniqueWorkOutcome.Updated;
            }
        }
        else
        {
            var replaced = CancelAndDelete(existing);
            Insert(id, definition, name, [], WorkState.Enqueued);
            outcome = replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued;
        }

        Settle();
        return outcome;
    }

    private (UniqueWorkOutcome Outcome, List<Guid> Prerequisites, WorkState State) ApplyExistingWorkPolicy(string name, ExistingWorkPolicy policy)
    {
        var existing = ByName(name);
        if (existing.Count == 0)
        {
            return (UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }

        switch (policy)
        {
            case ExistingWorkPolicy.Append or ExistingWorkPolicy.AppendOrReplace:
                var leaves = existing.Where(w => !HasDependents(w.Id)).ToList();
                var failed = leaves.Any(w => w.State == WorkState.Failed);
                var cancelled = leaves.Any(w => w.State == WorkState.Cancelled);
                if (policy == ExistingWorkPolicy.AppendOrReplace && (failed || cancelled))
                {
                    CancelAndDelete(existing);
                    return (UniqueWorkOutcome.Replaced, [], WorkState.Enqueued);
                }

                var state = failed ? WorkState.Failed
                    : cancelled ? WorkState.Cancelled
                    : leaves.All(w => w.State == WorkState.Succeeded) ? WorkState.Enqueued
                    : WorkState.Blocked;
                return (UniqueWorkOutcome.Appended, leaves.ConvertAll(w => w.Id), state);

            case ExistingWorkPolicy.Keep when existing.Any(w => w.State is WorkState.Enqueued or WorkState.Running):
                return (UniqueWorkOutcome.KeptExisting, [], WorkState.Enqueued);

            default:
                var replaced = CancelAndDelete(existing);
                return (replaced ? UniqueWorkOutcome.Replaced : UniqueWorkOutcome.Enqueued, [], WorkState.Enqueued);
        }
    }

    private WorkState BornState(List<Guid> prerequisites)
    {
        var states = prerequisites.ConvertAll(id => _works[id].State);
        if (states.Contains(WorkState.Failed))
        {
            return WorkState.Failed;
        }

        if (states.Contains(WorkState.Cancelled))
        {
            return WorkState.Cancelled;
        }

        return states.All(s => s == WorkState.Succeeded) ? WorkState.Enqueued : WorkState.Blocked;
    }

    private void Insert(Guid id, WorkDefinition definition, string? uniqueName, List<Guid> prerequisites, WorkState state)
    {
        var work = new ModelWork
        {
            Id = id,
            Label = definition.Label,
            Definition = definition,
            IsPeriodic = definition.Interval is not null,
            Seq = ++_seq,
            UniqueName = uniqueName,
            State = state,
            LastEnqueueTime = Now,
            FinishedAt = state.IsFinished() ? Now : null,
        };
        ApplyDefinition(work, definition);
        work.Prerequisites.AddRange(prerequisites.OrderBy(p => _works[p].Seq));
        work.NextRunAt = NextRunTime(work);
        _works.Add(id, work);
    }

    private static void ApplyDefinition(ModelWork work, WorkDefinition definition)
    {
        work.Definition = definition;
        work.BackoffDelay = Clamp(definition.BackoffDelay, MinimumBackoffDelay, MaximumBackoffDelay);
        if (definition.Interval is { } interval)
        {
            // The interval has a floor; the flex lies in [min(floor, interval), interval].
            work.Interval = interval < MinimumPeriodicInterval ? MinimumPeriodicInterval : interval;
            var floor = MinimumPeriodicFlex < work.Interval ? MinimumPeriodicFlex : work.Interval;
            work.Flex = Clamp(definition.Flex ?? interval, floor, work.Interval);
        }
    }

    // ---- cancel, prune, driver ----

    /// <summary>Cancels the matching works and their dependents; returns how many were cancelled.</summary>
    public int Cancel(Func<ModelWork, bool> match)
    {
        var count = 0;
        foreach (var work in _works.Values.Where(match).OrderBy(w => w.Seq).ToList())
        {
            count += CancelRecursive(work.Id);
        }

        Settle();
        return count;
    }

    /// <summary>Deletes finished work that no unfinished work depends on, finished at or before a time if one is given.</summary>
    public int Prune(long? finishedBefore = null)
    {
        var pruned = _works.Values
            .Where(w => w.State.IsFinished() && (finishedBefore is not { } cutoff || w.FinishedAt <= cutoff))
            .Where(w => !Dependents(w.Id).Any(d => !d.State.IsFinished()))
            .Select(w => w.Id)
            .ToList();
        foreach (var id in pruned)
        {
            Delete(id);
        }

        return pruned.Count;
    }

    /// <summary>The driver's "all constraints met"; false when it must refuse (no such work, or finished).</summary>
    public bool SetAllConstraintsMet(Guid id)
    {
        if (!_works.TryGetValue(id, out var work) || work.State.IsFinished())
        {
            return false;
        }

        work.ConstraintsOverridden = true;
        Settle();
        return true;
    }

    /// <summary>The driver's "initial delay met": only for enqueued work before its first run.</summary>
    public bool SetInitialDelayMet(Guid id) => MakeDueNow(id, w => w.State == WorkState.Enqueued && w.PeriodCount == 0 && w.RunAttemptCount == 0);

    /// <summary>The driver's "period delay met": only for enqueued periodic work.</summary>
    public bool SetPeriodDelayMet(Guid id) => MakeDueNow(id, w => w.IsPeriodic && w.State == WorkState.Enqueued);

    private bool MakeDueNow(Guid id, Func<ModelWork, bool> applies)
    {
        if (!_works.TryGetValue(id, out var work) || work.State.IsFinished() || !applies(work))
        {
            return false;
        }

        work.NextRunAt = Now;
        Settle();
        return true;
    }

    // ---- time, device, restarts ----

    /// <summary>The next time after now at which some work falls due (its constraints permitting) or a run times out.</summary>
    public long? NextDue() => _works.Values
        .Where(w => w.State == WorkState.Enqueued && ConstraintsMet(w) && w.NextRunAt > Now)
        .Select(w => (long?)w.NextRunAt)
        .Concat(Running.Select(w => (long?)Deadline(w)))
        .Min();

    /// <summary>Moves the clock: runs past their execution timeout stop first, then due work runs.</summary>
    public void AdvanceTo(long time)
    {
        Now = time;
        foreach (var work in Running.Where(w => Deadline(w) <= Now).ToList())
        {
            StopRun(work, StopReason.Timeout);
        }

        Settle();
    }

    /// <summary>Changes the device state: runs whose constraints no longer hold stop, then what can run runs.</summary>
    public void SetDevice(DeviceState device)
    {
        Device = device;
        foreach (var work in Running.ToList())
        {
            var reason = LostConstraint(work);
            if (reason != StopReason.NotStopped)
            {
                StopRun(work, reason);
            }
        }

        Settle();
    }

    /// <summary>
    /// Disposes the manager and opens a new one on the same store: running work stops with <see cref="StopReason.Shutdown"/>;
    /// then the device state is read afresh, old finished work is pruned, and due work runs.
    /// </summary>
    public void Restart()
    {
        foreach (var work in Running.ToList())
        {
            StopRun(work, StopReason.Shutdown);
        }

        Device = DeviceState.Unconstrained;
        Prune(Now - (long)KeepFinishedWorkFor.TotalMilliseconds);
        Settle();
    }

    /// <summary>Ends a held run with a result; false when the work is not running.</summary>
    public bool Release(Guid id, char result)
    {
        if (!_works.TryGetValue(id, out var work) || work.State != WorkState.Running)
        {
            return false;
        }

        Complete(work, result, work.RunInput, work.RunAttempt);
        Settle();
        return true;
    }

    // ---- running ----

    /// <summary>Runs everything due now whose constraints hold, until nothing more is due.</summary>
    private void Settle()
    {
        for (var round = 0; ; round++)
        {
            if (round > 10_000)
            {
                throw new InvalidOperationException("The model does not settle.");
            }

            var due = _works.Values
                .Where(w => w.State == WorkState.Enqueued && w.NextRunAt <= Now && ConstraintsMet(w))
                .OrderBy(w => w.Seq)
                .ToList();
            if (due.Count == 0)
            {
                return;
            }

            foreach (var work in due)
            {
                Run(work);
            }
        }
    }

    private void Run(ModelWork work)
    {
        var attempt = work.RunAttemptCount;
        work.RunAttemptCount++;
        work.StopReason = StopReason.NotStopped;
        var input = MergedInput(work);
        var result = 'S';
        if (!work.Definition.IsJoin)
        {
            var plan = input.GetString("plan")!;
            result = plan[Math.Min(attempt, plan.Length - 1)];
            _runs.Add(new ExpectedRun((int)input.GetInt64("k"), attempt, input.ToJson()));
        }

        if (result == 'H')
        {
            work.State = WorkState.Running;
            work.RunInput = input;
            work.RunAttempt = attempt;
            work.RunStartedAt = Now;
            return;
        }

        Complete(work, result, input, attempt);
    }

    /// <summary>A run's result: S success, F failure, X an exception, R retry.</summary>
    private void Complete(ModelWork work, char result, WorkData input, int attempt)
    {
        var label = input.GetInt64("k");
        work.StopReason = StopReason.NotStopped;
        switch (result)
        {
            case 'S':
                work.Output = work.Definition.IsJoin ? input : WorkData.From(($"o{label}", (long)attempt));
                work.FailureReason = null;
                work.FailedByPrerequisite = false;
                Finish(work, WorkState.Succeeded);
                break;

            case 'F':
            case 'X':
                work.Output = result == 'F' ? WorkData.From(($"f{label}", (long)attempt)) : WorkData.Empty;
                if (result == 'X')
                {
                    work.FailureReason = $"InvalidOperationException: boom {label}";
                    work.FailedByPrerequisite = false;
                }
                else if (!work.IsPeriodic)
                {
                    work.FailureReason = null; // a one-time result replaces the reason
                }

                Finish(work, WorkState.Failed);
                break;

            default:
                work.State = WorkState.Enqueued;
                work.ConstraintsOverridden = false;
                work.LastEnqueueTime = Now;
                work.NextRunAt = NextRunTime(work);
                break;
        }
    }

    private void Finish(ModelWork work, WorkState state)
    {
        work.ConstraintsOverridden = false;
        if (work.IsPeriodic)
        {
            // Success and failure alike: the next period, attempts reset, next run an interval after this one.
            work.State = WorkState.Enqueued;
            work.PeriodCount++;
            work.RunAttemptCount = 0;
            work.LastEnqueueTime = Now;
            work.NextRunAt = NextRunTime(work);
            return;
        }

        work.State = state;
        work.FinishedAt ??= Now;
        if (state == WorkState.Succeeded)
        {
            foreach (var dependent in Dependents(work.Id).Where(d => d.State == WorkState.Blocked))
            {
                if (dependent.Prerequisites.All(p => _works[p].State == WorkState.Succeeded))
                {
                    dependent.State = WorkState.Enqueued;
                    dependent.LastEnqueueTime = Now;
                    dependent.NextRunAt = NextRunTime(dependent);
                }
            }
        }
        else
        {
            FailDependents(work.Id);
        }
    }

    private void FailDependents(Guid id)
    {
        foreach (var dependent in Dependents(id).ToList())
        {
            if (dependent.State.IsFinished())
            {
                continue;
            }

            dependent.State = WorkState.Failed;
            dependent.FailureReason = $"Prerequisite {id} failed.";
            dependent.FailedByPrerequisite = true;
            dependent.FailureCandidates = dependent.Prerequisites.ToList();
            dependent.FinishedAt ??= Now;
            FailDependents(dependent.Id);
        }
    }

    private int CancelRecursive(Guid id)
    {
        if (!_works.TryGetValue(id, out var work) || work.State.IsFinished())
        {
            return 0;
        }

        if (work.State == WorkState.Running)
        {
            work.StopReason = StopReason.CancelledByApp;
        }

        work.State = WorkState.Cancelled;
        work.FinishedAt ??= Now;
        var count = 1;
        foreach (var dependent in Dependents(id).ToList())
        {
            count += CancelRecursive(dependent.Id);
        }

        return count;
    }

    private bool CancelAndDelete(List<ModelWork> existing)
    {
        var cancelled = 0;
        foreach (var work in existing)
        {
            cancelled += CancelRecursive(work.Id);
        }

        foreach (var work in existing)
        {
            Delete(work.Id);
        }

        return cancelled > 0;
    }

    /// <summary>The work's own input first, then its prerequisites' outputs in enqueue order, by its merger.</summary>
    private WorkData MergedInput(ModelWork work)
    {
        var inputs = new List<WorkData> { work.Definition.Input };
        inputs.AddRange(work.Prerequisites.Select(p => _works[p]).OrderBy(p => p.Seq).Select(p => p.Output));
        if (!work.Definition.IsJoin)
        {
            var overwriting = WorkData.CreateBuilder();
            foreach (var input in inputs)
            {
                overwriting.PutAll(input);
            }

            return overwriting.Build();
        }

        // Array-creating: the values of each key, concatenated.
        var arrays = new SortedDictionary<string, List<long>>(StringComparer.Ordinal);
        foreach (var (key, value) in inputs.SelectMany(i => i))
        {
            if (!arrays.TryGetValue(key, out var list))
            {
                arrays[key] = list = [];
            }

            list.AddRange(value switch
            {
                long l => [l],
                long[] a => a,
                _ => throw new InvalidOperationException($"The model merges only numbers; {key} is {value.GetType().Name}."),
            });
        }

        var builder = WorkData.CreateBuilder();
        foreach (var (key, values) in arrays)
        {
            builder.Put(key, values.ToArray());
        }

        return builder.Build();
    }

    // ---- arithmetic and queries ----

    /// <summary>The schedule arithmetic of docs/work.md: backoff after attempts, else initial delay (and flex) or interval.</summary>
    private static long NextRunTime(ModelWork work)
    {
        if (work.RunAttemptCount > 0)
        {
            var d = work.BackoffDelay.TotalMilliseconds;
            var n = work.RunAttemptCount;
            var backoff = work.Definition.BackoffPolicy == BackoffPolicy.Linear ? d * n : d * Math.Pow(2, n - 1);
            return work.LastEnqueueTime + (long)Math.Min(backoff, MaximumBackoffDelay.TotalMilliseconds);
        }

        if (!work.IsPeriodic)
        {
            return work.LastEnqueueTime + (long)work.Definition.InitialDelay.TotalMilliseconds;
        }

        if (work.PeriodCount == 0)
        {
            var first = work.LastEnqueueTime + (long)work.Definition.InitialDelay.TotalMilliseconds;
            return work.Flex < work.Interval ? first + (long)(work.Interval - work.Flex).TotalMilliseconds : first;
        }

        return work.LastEnqueueTime + (long)work.Interval.TotalMilliseconds;
    }

    /// <summary>A stopped run: back to enqueued, the attempt counted, the backoff measured from the last enqueue time.</summary>
    private void StopRun(ModelWork work, StopReason reason)
    {
        work.State = WorkState.Enqueued;
        work.StopReason = reason;
        work.NextRunAt = NextRunTime(work);
    }

    private static long Deadline(ModelWork work) => work.RunStartedAt + (long)ExecutionTimeout.TotalMilliseconds;

    private bool ConstraintsMet(ModelWork work) => work.ConstraintsOverridden || LostConstraint(work) == StopReason.NotStopped;

    /// <summary>The first constraint, in the documented order, that the device state does not meet.</summary>
    private StopReason LostConstraint(ModelWork work)
    {
        if (work.ConstraintsOverridden)
        {
            return StopReason.NotStopped;
        }

        var c = work.Definition.Constraints;
        var network = Device.Network;
        var networkMet = c.RequiredNetworkType switch
        {
            NetworkType.NotRequired => true,
            NetworkType.Connected => network.IsConnected,
            NetworkType.Unmetered => network.IsConnected && !network.IsMetered,
            NetworkType.NotRoaming => network.IsConnected && !network.IsRoaming,
            NetworkType.Metered => network.IsConnected && network.IsMetered,
            _ => throw new InvalidOperationException($"Unknown network type {c.RequiredNetworkType}."),
        };
        return !networkMet ? StopReason.ConstraintConnectivity
            : c.RequiresCharging && !Device.IsCharging ? StopReason.ConstraintCharging
            : c.RequiresBatteryNotLow && Device.IsBatteryLow ? StopReason.ConstraintBatteryNotLow
            : c.RequiresStorageNotLow && Device.IsStorageLow ? StopReason.ConstraintStorageNotLow
            : c.RequiresDeviceIdle && !Device.IsIdle ? StopReason.ConstraintDeviceIdle
            : StopReason.NotStopped;
    }

    private List<ModelWork> ByName(string name) => _works.Values.Where(w => w.UniqueName == name).OrderBy(w => w.Seq).ToList();

    private IEnumerable<ModelWork> Dependents(Guid id) => _works.Values.Where(w => w.Prerequisites.Contains(id)).OrderBy(w => w.Seq);

    private bool HasDependents(Guid id) => _works.Values.Any(w => w.Prerequisites.Contains(id));

    private void Delete(Guid id)
    {
        _works.Remove(id);
        foreach (var work in _works.Values)
        {
            work.Prerequisites.Remove(id);
        }
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;
}
