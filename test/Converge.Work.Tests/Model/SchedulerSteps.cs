using System.Globalization;
using CsCheck;

namespace Converge.Work.Tests.Model;

/// <summary>A one-time work of a generated sequence. Its worker's results follow <see cref="Plan"/>, one letter per attempt.</summary>
/// <param name="Label">The work's number in the sequence.</param>
/// <param name="Worker">The worker's name.</param>
/// <param name="Tags">Tags of its own.</param>
/// <param name="Delay">The initial delay.</param>
/// <param name="Backoff">The backoff policy.</param>
/// <param name="BackoffDelay">The base backoff delay asked for.</param>
/// <param name="Constraints">The constraints.</param>
/// <param name="Plan">
/// The result of each attempt: S success, F failure, R retry, X throw, H hold (run until released, stopped or timed out);
/// the last letter repeats.
/// </param>
internal sealed record WorkSpec(int Label, string Worker, string[] Tags, TimeSpan Delay, BackoffPolicy Backoff, TimeSpan BackoffDelay, Constraints Constraints, string Plan)
{
    public override string ToString() => $"#{Label} {Worker} {Plan}{SchedulerSteps.Options(Tags, Delay, Backoff, BackoffDelay, Constraints)}";
}

/// <summary>A periodic work of a generated sequence.</summary>
/// <param name="Work">Everything but the schedule.</param>
/// <param name="Interval">The repeat interval asked for.</param>
/// <param name="Flex">The flex interval asked for, or <see langword="null"/> for none.</param>
internal sealed record PeriodicSpec(WorkSpec Work, TimeSpan Interval, TimeSpan? Flex)
{
    public override string ToString() =>
        $"#{Work.Label} {Work.Worker} {Work.Plan} every {SchedulerSteps.Time(Interval)}{(Flex is { } f ? $" flex {SchedulerSteps.Time(f)}" : "")}" +
        SchedulerSteps.Options(Work.Tags, Work.Delay, Work.Backoff, Work.BackoffDelay, Work.Constraints);
}

/// <summary>A generated sequence and the number of slots the scheduler has for it.</summary>
/// <param name="FewSlots">Whether the scheduler runs at most two works at once; such sequences hold no work.</param>
/// <param name="Steps">The steps.</param>
internal sealed record Scenario(bool FewSlots, Step[] Steps)
{
    public override string ToString() =>
        $"{Environment.NewLine}  ({(FewSlots ? "2 slots, no held work" : "a slot for every work")}){Environment.NewLine}" +
        string.Join(Environment.NewLine, Steps.Select((s, i) => $"  {i + 1,2}. {s}"));
}

/// <summary>One operation of a generated sequence; its text is what a failing run prints.</summary>
internal abstract record Step;

/// <summary>Enqueues one step of works, or a chain of steps (BeginWith … Then …).</summary>
internal sealed record Enqueue(WorkSpec[][] Chain) : Step
{
    public override string ToString() => $"enqueue {SchedulerSteps.Chain(Chain)}";
}

/// <summary>Enqueues a unique chain (or single work) under a name with a policy.</summary>
internal sealed record EnqueueUnique(string Name, ExistingWorkPolicy Policy, WorkSpec[][] Chain) : Step
{
    public override string ToString() => $"enqueue unique '{Name}' {Policy}: {SchedulerSteps.Chain(Chain)}";
}

/// <summary>Combines two chains, the first one unique if it has a name, optionally followed by one more work.</summary>
internal sealed record Combine(string? LeftName, ExistingWorkPolicy LeftPolicy, WorkSpec[][] Left, WorkSpec[][] Right, int JoinLabel, WorkSpec? Then) : Step
{
    public override string ToString() =>
        $"combine ({(LeftName is null ? "" : $"unique '{LeftName}' {LeftPolicy}: ")}{SchedulerSteps.Chain(Left)}) with ({SchedulerSteps.Chain(Right)}) " +
        $"in join #{JoinLabel}{(Then is null ? "" : $" then {Then}")}";
}

/// <summary>Enqueues periodic work without a name.</summary>
internal sealed record EnqueuePeriodic(PeriodicSpec Work) : Step
{
    public override string ToString() => $"enqueue periodic {Work}";
}

/// <summary>Enqueues unique periodic work.</summary>
internal sealed record EnqueueUniquePeriodic(string Name, ExistingPeriodicWorkPolicy Policy, PeriodicSpec Work) : Step
{
    public override string ToString() => $"enqueue unique periodic '{Name}' {Policy}: {Work}";
}

/// <summary>Enqueues the very request of an earlier work again: refused while a work has its id, a fresh work once it is gone.</summary>
internal sealed record EnqueueAgain(int Target) : Step
{
    public override string ToString() => Target == 0 ? "enqueue again: nothing" : $"enqueue the request of #{Target} again";
}

/// <summary>Cancels a work by id; label 0 is an id nobody enqueued.</summary>
internal sealed record CancelById(int Target) : Step
{
    public override string ToString() => Target == 0 ? "cancel an unknown id" : $"cancel #{Target}";
}

/// <summary>Cancels every work with a tag.</summary>
internal sealed record CancelByTag(string Tag) : Step
{
    public override string ToString() => $"cancel tag '{Tag}'";
}

/// <summary>Cancels the works of a unique name.</summary>
internal sealed record CancelUnique(string Name) : Step
{
    public override string ToString() => $"cancel unique '{Name}'";
}

/// <summary>Cancels every work.</summary>
internal sealed record CancelAll : Step
{
    public override string ToString() => "cancel all";
}

/// <summary>Prunes finished work.</summary>
internal sealed record Prune : Step
{
    public override string ToString() => "prune";
}

/// <summary>Moves the fake clock forward.</summary>
internal sealed record Advance(TimeSpan By) : Step
{
    public override string ToString() => $"advance {SchedulerSteps.Time(By)}";
}

/// <summary>Changes the device state.</summary>
internal sealed record ChangeDevice(DeviceChange Change, int Value) : Step
{
    public DeviceState Apply(DeviceState state) => Change switch
    {
        DeviceChange.Network => state with { Network = SchedulerSteps.Networks[Value % SchedulerSteps.Networks.Length].State },
        DeviceChange.Charging => state with { IsCharging = Value % 2 == 1 },
        DeviceChange.BatteryLow => state with { IsBatteryLow = Value % 2 == 1 },
        DeviceChange.StorageLow => state with { IsStorageLow = Value % 2 == 1 },
        _ => state with { IsIdle = Value % 2 == 1 },
    };

    public override string ToString() => Change switch
    {
        DeviceChange.Network => $"network {SchedulerSteps.Networks[Value % SchedulerSteps.Networks.Length].Name}",
        DeviceChange.Charging => Value % 2 == 1 ? "charging" : "not charging",
        DeviceChange.BatteryLow => Value % 2 == 1 ? "battery low" : "battery ok",
        DeviceChange.StorageLow => Value % 2 == 1 ? "storage low" : "storage ok",
        _ => Value % 2 == 1 ? "device idle" : "device busy",
    };
}

/// <summary>The part of the device state a step changes.</summary>
internal enum DeviceChange
{
    Network,
    Charging,
    BatteryLow,
    StorageLow,
    Idle,
}

/// <summary>Ends a held run with a result: the <see cref="Which"/>-th running work in enqueue order, modulo their number; nothing if none runs.</summary>
internal sealed record Release(int Which, char Result) : Step
{
    public override string ToString() => $"release held work {Which} with {Result}";
}

/// <summary>Disposes the manager and opens a new one on the same store, at the same fake time.</summary>
internal sealed record Restart : Step
{
    public override string ToString() => "restart";
}

/// <summary>Calls the test driver for a work; label 0 is an id nobody enqueued.</summary>
internal sealed record Drive(DriverCall Call, int Target) : Step
{
    public override string ToString() => $"driver: {Call} for {(Target == 0 ? "an unknown id" : $"#{Target}")}";
}

/// <summary>The test driver's calls.</summary>
internal enum DriverCall
{
    AllConstraintsMet,
    InitialDelayMet,
    PeriodDelayMet,
}

/// <summary>The generators of sequences, and their text.</summary>
internal static class SchedulerSteps
{
    public static readonly (string Name, NetworkState State)[] Networks =
    [
        ("disconnected", NetworkState.Disconnected),
        ("unmetered", NetworkState.Unmetered),
        ("metered", NetworkState.Metered),
        ("roaming", new NetworkState(IsConnected: true, IsMetered: true, IsRoaming: true)),
    ];

    public static readonly string[] WorkerNames = ["alpha", "beta"];
    public static readonly string[] OneTimeNames = ["u1", "u2"];

    private static readonly TimeSpan[] Delays = [TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), TimeSpan.FromHours(1)];
    private static readonly TimeSpan[] BackoffDelays = [TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1)];
    private static readonly TimeSpan[] Intervals = [TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1)];
    private static readonly TimeSpan?[] Flexes = [null, null, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(10)];
    private static readonly TimeSpan[] Advances =
        [TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), TimeSpan.FromHours(3)];

    private static readonly string[][] TagSets = [[], [], ["red"], ["blue"], ["red", "blue"]];
    private static readonly string[] CancelTags = ["red", "blue", "alpha", "beta"];
    private static readonly string[] PeriodicNames = ["p1", "p2", "u1"]; // u1 is also a one-time name: Update must refuse it

    private static readonly Constraints[] ConstraintChoices =
    [
        Constraints.None, Constraints.None, Constraints.None, Constraints.None, Constraints.None, Constraints.None,
        new(RequiredNetworkType: NetworkType.Connected),
        new(RequiredNetworkType: NetworkType.Unmetered),
        new(RequiredNetworkType: NetworkType.Metered),
        new(RequiredNetworkType: NetworkType.NotRoaming),
        new(RequiresCharging: true),
        new(RequiresBatteryNotLow: true),
        new(RequiresStorageNotLow: true),
        new(RequiresDeviceIdle: true),
        new(RequiredNetworkType: NetworkType.Connected, RequiresCharging: true),
    ];

    private static readonly Gen<string> Plan =
        Gen.Int[0, 13].Select(i => i < 6 ? 'S' : i < 8 ? 'R' : i < 10 ? 'F' : i < 11 ? 'X' : 'H').Array[1, 3].Select(letters => new string(letters));

    private static readonly Gen<WorkSpec> Work = Gen.Select(
        Gen.Int[0, WorkerNames.Length - 1],
        Gen.Int[0, TagSets.Length - 1],
        Gen.Int[0, Delays.Length - 1],
        Gen.Bool,
        Gen.Int[0, BackoffDelays.Length - 1],
        Gen.Int[0, ConstraintChoices.Length - 1],
        Plan,
        (worker, tags, delay, linear, backoff, constraints, plan) => new WorkSpec(
            0,
            WorkerNames[worker],
            TagSets[tags],
            Delays[delay],
            linear ? BackoffPolicy.Linear : BackoffPolicy.Exponential,
            BackoffDelays[backoff],
            ConstraintChoices[constraints],
            plan));

    private static readonly Gen<PeriodicSpec> Periodic = Gen.Select(
        Work,
        Gen.Int[0, Intervals.Length - 1],
        Gen.Int[0, Flexes.Length - 1],
        (work, interval, flex) => new PeriodicSpec(work, Intervals[interval], Flexes[flex]));

    /// <summary>Mostly one work; sometimes a chain of up to three steps of one or two work items.</summary>
    private static readonly Gen<WorkSpec[][]> Chains = Gen.Frequency(
        (4, Work.Select(w => new[] { new[] { w } })),
        (2, Work.Array[1, 2].Array[1, 3]));

    /// <summary>Any step, weighted so that sequences mostly enqueue and move the clock.</summary>
    private static readonly Gen<Step> AnyStep = Gen.Frequency(
        (12, Chains.Select(c => (Step)new Enqueue(c))),
        (10, Gen.Select(Gen.Int[0, OneTimeNames.Length - 1], Gen.Int[0, 3], Chains, (n, p, c) => (Step)new EnqueueUnique(OneTimeNames[n], (ExistingWorkPolicy)p, c))),
        (3, Gen.Select(
            Gen.Int[0, 4],
            Gen.Int[0, 3],
            Work.Array[1, 2].Array[1, 2],
            Work.Array[1, 2].Array[1, 2],
            Gen.Bool,
            Work,
            (name, policy, l, r, then, w) => (Step)new Combine(name < OneTimeNames.Length ? OneTimeNames[name] : null, (ExistingWorkPolicy)policy, l, r, 0, then ? w : null))),
        (2, Gen.Int[0, 1000].Select(t => (Step)new EnqueueAgain(t))),
        (4, Periodic.Select(p => (Step)new EnqueuePeriodic(p))),
        (6, Gen.Select(Gen.Int[0, PeriodicNames.Length - 1], Gen.Int[0, 2], Periodic, (n, p, w) => (Step)new EnqueueUniquePeriodic(PeriodicNames[n], (ExistingPeriodicWorkPolicy)p, w))),
        (4, Gen.Int[0, 1000].Select(t => (Step)new CancelById(t))),
        (2, Gen.Int[0, CancelTags.Length - 1].Select(t => (Step)new CancelByTag(CancelTags[t]))),
        (3, Gen.Int[0, PeriodicNames.Length].Select(n => (Step)new CancelUnique(n < PeriodicNames.Length ? PeriodicNames[n] : "u2"))),
        (1, Gen.Const((Step)new CancelAll())),
        (2, Gen.Const((Step)new Prune())),
        (16, Gen.Int[0, Advances.Length - 1].Select(a => (Step)new Advance(Advances[a]))),
        (6, Gen.Select(Gen.Int[0, 4], Gen.Int[0, 3], (c, v) => (Step)new ChangeDevice((DeviceChange)c, v))),
        (3, Gen.Const((Step)new Restart())),
        (5, Gen.Select(Gen.Int[0, 3], Gen.Int[0, 5], (w, r) => (Step)new Release(w, "SSFRXR"[r]))),
        (4, Gen.Select(Gen.Int[0, 2], Gen.Int[0, 1000], (c, t) => (Step)new Drive((DriverCall)c, t))));

    /// <summary>Sequences of up to <paramref name="maxLength"/> steps, their works numbered in order and references resolved to those numbers.</summary>
    public static Gen<Scenario> Scenarios(int maxLength) => Gen.Select(Gen.Bool, AnyStep.Array[1, maxLength], (few, steps) => new Scenario(few, Number(few, steps)));

    public static string Chain(WorkSpec[][] chain) => string.Join(" then ", chain.Select(step => step.Length == 1 ? $"{step[0]}" : $"({string.Join(", ", step)})"));

    public static string Options(string[] tags, TimeSpan delay, BackoffPolicy backoff, TimeSpan backoffDelay, Constraints constraints)
    {
        var parts = new List<string>();
        if (tags.Length > 0)
        {
            parts.Add("tags " + string.Join("+", tags));
        }

        if (delay > TimeSpan.Zero)
        {
            parts.Add("delay " + Time(delay));
        }

        if (constraints.HasAny)
        {
            parts.Add("needs " + Needs(constraints));
        }

        if (backoff != BackoffPolicy.Exponential || backoffDelay != TimeSpan.FromSeconds(30))
        {
            parts.Add($"backoff {(backoff == BackoffPolicy.Linear ? "linear" : "exponential")} {Time(backoffDelay)}");
        }

        return parts.Count == 0 ? "" : $" [{string.Join(", ", parts)}]";
    }

    public static string Time(TimeSpan t) =>
        t.TotalHours >= 1 && t.TotalHours == Math.Floor(t.TotalHours) ? $"{t.TotalHours}h"
        : t.TotalMinutes >= 1 && t.TotalMinutes == Math.Floor(t.TotalMinutes) ? $"{t.TotalMinutes}min"
        : t.TotalSeconds.ToString(CultureInfo.InvariantCulture) + "s";

    private static string Needs(Constraints c)
    {
        var needs = new List<string>();
        if (c.RequiredNetworkType != NetworkType.NotRequired)
        {
            needs.Add(c.RequiredNetworkType.ToString());
        }

        if (c.RequiresCharging)
        {
            needs.Add("charging");
        }

        if (c.RequiresBatteryNotLow)
        {
            needs.Add("battery not low");
        }

        if (c.RequiresStorageNotLow)
        {
            needs.Add("storage not low");
        }

        if (c.RequiresDeviceIdle)
        {
            needs.Add("idle");
        }

        return string.Join("+", needs);
    }

    /// <summary>
    /// Numbers the works in order of appearance and turns each raw reference into one of the numbers so far (or 0). With few
    /// slots, no work holds: a held work would keep a slot, and which due work gets a slot would depend on timing.
    /// </summary>
    private static Step[] Number(bool fewSlots, Step[] steps)
    {
        var next = 0;
        WorkSpec Label(WorkSpec w) => w with { Label = ++next, Plan = fewSlots ? w.Plan.Replace('H', 'S') : w.Plan };
        WorkSpec[][] Labels(WorkSpec[][] chain) => chain.Select(step => step.Select(Label).ToArray()).ToArray();
        int Target(int raw) => raw % (next + 1);

        return steps.Where(step => !(fewSlots && step is Release)).Select(step => step switch
        {
            Enqueue e => e with { Chain = Labels(e.Chain) },
            EnqueueUnique u => u with { Chain = Labels(u.Chain) },
            Combine c => NumberCombine(c),
            EnqueuePeriodic p => p with { Work = p.Work with { Work = Label(p.Work.Work) } },
            EnqueueUniquePeriodic p => p with { Work = p.Work with { Work = Label(p.Work.Work) } },
            CancelById c => c with { Target = Target(c.Target) },
            EnqueueAgain e => e with { Target = Target(e.Target) },
            Drive d => d with { Target = Target(d.Target) },
            _ => step,
        }).ToArray();

        Step NumberCombine(Combine c)
        {
            var left = Labels(c.Left);
            var right = Labels(c.Right);
            var join = ++next;
            return c with { Left = left, Right = right, JoinLabel = join, Then = c.Then is null ? null : Label(c.Then) };
        }
    }
}
