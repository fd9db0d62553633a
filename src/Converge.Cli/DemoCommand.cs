using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Converge.Work;
using Spectre.Console;

namespace Converge.Cli;

/// <summary>`converge demo`: shows Converge at work end to end and exits 0 only if every check holds.</summary>
internal static partial class DemoCommand
{
    public static Command Create()
    {
        var data = new Option<DirectoryInfo?>("--data") { Description = "Folder for the demo's stores; a new temporary folder by default." };
        var command = new Command("demo", "Run the end-to-end demo on embedded SQLite stores; exits 0 only if every check holds.") { data };
        command.SetAction((parse, ct) => new Demo(parse.GetValue(data)).RunAsync(ct));

        var db = new Option<FileInfo>("--db") { Required = true };
        var child = new Command("crash-child", "Internal: the process the demo kills mid-work.") { db };
        child.Hidden = true;
        child.SetAction((parse, ct) => Demo.CrashChildAsync(parse.GetValue(db)!.FullName, ct));
        command.Subcommands.Add(child);
        return command;
    }

    private sealed partial class Demo(DirectoryInfo? data)
    {
        private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);
        private readonly List<(string Check, bool Ok, string Detail)> _checks = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public async Task<int> RunAsync(CancellationToken ct)
        {
            var directory = data?.FullName ?? Directory.CreateTempSubdirectory("converge-demo-").FullName;
            Directory.CreateDirectory(directory);
            AnsiConsole.Write(new Rule("[bold]Converge demo[/]").LeftJustified());
            AnsiConsole.MarkupLine($"[grey]Stores in {Markup.Escape(directory)}[/]");
            AnsiConsole.WriteLine();

            try
            {
                await SyncAsync(directory, ct);
                await WorkAsync(Path.Combine(directory, "work.db"), ct);
                await CrashAsync(Path.Combine(directory, "crash.db"), ct);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or OperationCanceledException or HttpRequestException or Converge.Client.ConvergeSyncException)
            {
                _checks.Add(("demo ran to the end", false, e.Message));
            }

            AnsiConsole.WriteLine();
            var table = new Table().RoundedBorder().AddColumn("check").AddColumn("result").AddColumn("detail");
            foreach (var (check, ok, detail) in _checks)
            {
                table.AddRow(Markup.Escape(check), ok ? "[green]pass[/]" : "[red]FAIL[/]", Markup.Escape(detail));
            }

            AnsiConsole.Write(table);
            var passed = _checks.Count > 0 && _checks.TrueForAll(c => c.Ok);
            AnsiConsole.MarkupLine(passed
                ? $"[green bold]All {_checks.Count} checks passed[/] in {_clock.Elapsed.TotalSeconds:F1} s."
                : "[red bold]Some checks failed.[/]");
            return passed ? 0 : 1;
        }

        private void Check(string check, bool ok, string detail) => _checks.Add((check, ok, detail));

        private string At() => $"{_clock.Elapsed.TotalSeconds,6:F3}s";

        private async Task WorkAsync(string db, CancellationToken ct)
        {
            var device = new ManualDeviceStateMonitor(DeviceState.Unconstrained with { Network = NetworkState.Disconnected });
            var syncRuns = new List<TimeSpan>();
            var attempts = new List<(int Attempt, TimeSpan At)>();
            var registry = new WorkerRegistry()
                .Add("dataSyncTask", _ => new DataSyncTask(syncRuns, _clock))
                .ExecuteTask(ctx => Dispatch(ctx, attempts));
            var options = new WorkManagerOptions
            {
                DatabasePath = db,
                MinimumPeriodicInterval = TimeSpan.FromSeconds(1), // WorkManager's floor is 15 minutes; lowered so the demo is quick
                MinimumPeriodicFlex = TimeSpan.FromSeconds(1),
                MinimumBackoffDelay = TimeSpan.FromMilliseconds(100),
            };
            await using var manager = new WorkManager(options, registry, deviceStateMonitor: device);
            await manager.StartAsync(ct);

            // 1. Unique periodic work with a network constraint: the background sync task ("dataSyncTask", as in the workmanager Flutter plugin's example).
            AnsiConsole.Write(new Rule("4. Periodic work: \"dataSyncTask\", every second, network required").LeftJustified());
            var sync = new PeriodicWorkRequestBuilder("dataSyncTask", TimeSpan.FromSeconds(1))
                .SetConstraints(new Constraints(NetworkType.Connected))
                .SetBackoffCriteria(BackoffPolicy.Exponential, TimeSpan.FromMilliseconds(200))
                .Build();
            var outcome = await manager.EnqueueUniquePeriodicWorkAsync("dataSyncTask", ExistingPeriodicWorkPolicy.Keep, sync, ct);
            var again = await manager.EnqueueUniquePeriodicWorkAsync("dataSyncTask", ExistingPeriodicWorkPolicy.Keep, sync, ct);
            AnsiConsole.MarkupLine($"{At()} enqueued ({outcome}); enqueued again with Keep: {again}");
            await manager.WhenIdleAsync(ct);
            var waiting = await manager.GetWorkInfoAsync(sync.Id, ct);
            AnsiConsole.MarkupLine($"{At()} device offline: state {waiting!.State}, runs so far {syncRuns.Count}");
            Check("periodic work waits for its network constraint", waiting.State == WorkState.Enqueued && syncRuns.Count == 0, $"{waiting.State}, {syncRuns.Count} runs while offline");

            device.Set(DeviceState.Unconstrained);
            AnsiConsole.MarkupLine($"{At()} device online");
            var third = await WaitAsync(manager, sync.Id, i => i.PeriodCount >= 3, ct);
            foreach (var (run, i) in syncRuns.Take(3).Select((r, i) => (r, i)))
            {
                AnsiConsole.MarkupLine($"{run.TotalSeconds,6:F3}s   dataSyncTask run {i + 1}");
            }

            var gaps = syncRuns.Zip(syncRuns.Skip(1), (a, b) => (b - a).TotalSeconds).Take(2).ToList();
            Check("periodic work re-runs every interval", third.PeriodCount >= 3 && gaps.TrueForAll(g => g >= 0.95),
                $"gaps between runs: {string.Join(", ", gaps.Select(g => g.ToString("F2", CultureInfo.InvariantCulture) + " s"))}");
            Check("Keep leaves the existing unique work alone", again == UniqueWorkOutcome.KeptExisting, again.ToString());
            await manager.CancelUniqueWorkAsync("dataSyncTask", ct);

            // 2. Retry with exponential backoff.
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Rule("5. Retry with backoff: \"flaky-upload\" fails twice, exponential 200 ms").LeftJustified());
            var upload = new OneTimeWorkRequestBuilder("flaky-upload").SetBackoffCriteria(BackoffPolicy.Exponential, TimeSpan.FromMilliseconds(200)).Build();
            await manager.EnqueueAsync(upload, ct);
            var uploaded = await WaitAsync(manager, upload.Id, i => i.State.IsFinished(), ct);
            for (var i = 0; i < attempts.Count; i++)
            {
                var delay = i == 0 ? "" : $"  (+{(attempts[i].At - attempts[i - 1].At).TotalMilliseconds:F0} ms)";
                AnsiConsole.MarkupLine($"{attempts[i].At.TotalSeconds,6:F3}s   attempt {attempts[i].Attempt}{delay}");
            }

            var delays = attempts.Zip(attempts.Skip(1), (a, b) => (b.At - a.At).TotalMilliseconds).ToList();
            Check("retry backs off exponentially, then succeeds",
                uploaded.State == WorkState.Succeeded && attempts.Count == 3 && delays.Count == 2 && delays[0] >= 190 && delays[1] >= 390,
                $"{uploaded.State} after {attempts.Count} attempts; delays {string.Join(", ", delays.Select(d => d.ToString("F0", CultureInfo.InvariantCulture) + " ms"))}");

            // 3. A chain: two downloads in parallel, merged, then a notification.
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Rule("6. Chain: download ×2 → merge (array-creating) → notify").LeftJustified());
            var a = new OneTimeWorkRequestBuilder("download").SetInputData(WorkData.From(("file", "a.json"))).Build();
            var b = new OneTimeWorkRequestBuilder("download").SetInputData(WorkData.From(("file", "b.json"))).Build();
            var merge = new OneTimeWorkRequestBuilder("merge").SetInputMerger(InputMerger.ArrayCreating).Build();
            var notify = OneTimeWorkRequest.From("notify");
            await manager.BeginWith(a, b).Then(merge).Then(notify).EnqueueAsync(ct);
            var notified = await WaitAsync(manager, notify.Id, i => i.State.IsFinished(), ct);
            AnsiConsole.Write(WorkCommands.CompactWorkTable(await manager.GetWorkInfosAsync(new WorkQuery { Ids = [a.Id, b.Id, merge.Id, notify.Id] }, ct)));
            Check("chain runs in order and merges outputs", notified.State == WorkState.Succeeded && notified.OutputData.GetString("message") == "2 files merged",
                notified.OutputData.GetString("message") ?? notified.State.ToString());
        }

        private async Task CrashAsync(string db, CancellationToken ct)
        {
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Rule("7. Durability: the process running \"import\" is killed (SIGKILL) mid-work").LeftJustified());
            using (var child = ChildProcess.StartSelf("demo", "crash-child", "--db", db))
            {
                var started = await child.WaitForLineAsync("STARTED", StepTimeout);
                AnsiConsole.MarkupLine($"{At()} child process {child.Id}: {Markup.Escape(started)}");
                await child.KillAsync();
                AnsiConsole.MarkupLine($"{At()} child killed with SIGKILL (exit code {child.Process.ExitCode})");
            }

            var attempts = new List<int>();
            var registry = new WorkerRegistry().Add("import", _ => new ImportWorker(attempts));
            await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, registry);
            await manager.StartAsync(ct);
            var infos = await manager.GetWorkInfosForUniqueWorkAsync("import", ct);
            var import = infos.Single();
            var done = await WaitAsync(manager, import.Id, i => i.State.IsFinished(), ct);
            AnsiConsole.MarkupLine($"{At()} restarted: \"import\" ran again with attempt count {string.Join(", ", attempts)} → {done.State}");
            Check("work killed mid-run runs again after restart", done.State == WorkState.Succeeded && attempts.SequenceEqual([1]),
                $"{done.State}, attempt count {string.Join(", ", attempts)} on the re-run");
        }

        public static async Task<int> CrashChildAsync(string db, CancellationToken ct)
        {
            var registry = new WorkerRegistry().Add("import", _ => new ImportWorker(null));
            await using var manager = new WorkManager(new WorkManagerOptions { DatabasePath = db }, registry);
            await manager.StartAsync(ct);
            await manager.EnqueueUniqueWorkAsync("import", ExistingWorkPolicy.Keep, OneTimeWorkRequest.From("import"), ct);
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }

        private static async Task<WorkInfo> WaitAsync(WorkManager manager, Guid id, Func<WorkInfo, bool> until, CancellationToken ct)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(StepTimeout);
            try
            {
                await foreach (var info in manager.WatchWorkInfoAsync(id, cts.Token))
                {
                    if (info is not null && until(info))
                    {
                        return info;
                    }
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"Work {id} did not reach the expected state within {StepTimeout.TotalSeconds} s.");
            }

            throw new InvalidOperationException($"Work {id} disappeared.");
        }

        private Task<WorkResult> Dispatch(WorkContext ctx, List<(int Attempt, TimeSpan At)> attempts)
        {
            switch (ctx.WorkerName)
            {
                case "flaky-upload":
                    lock (attempts)
                    {
                        attempts.Add((ctx.RunAttemptCount, _clock.Elapsed));
                    }

                    return Task.FromResult(ctx.RunAttemptCount < 2 ? WorkResult.Retry() : WorkResult.Success());
                case "download":
                    return Task.FromResult(WorkResult.Success(WorkData.From(("file", ctx.InputData.GetString("file")!))));
                case "merge":
                    var files = ctx.InputData.GetStringArray("file") ?? [];
                    return Task.FromResult(WorkResult.Success(WorkData.From(("count", files.Count))));
                case "notify":
                    return Task.FromResult(WorkResult.Success(WorkData.From(("message", $"{ctx.InputData.GetInt64("count")} files merged"))));
                default:
                    return Task.FromResult(WorkResult.Failure());
            }
        }
    }

    private sealed class DataSyncTask(List<TimeSpan> runs, Stopwatch clock) : IWorker
    {
        public Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            lock (runs)
            {
                runs.Add(clock.Elapsed);
            }

            return Task.FromResult(WorkResult.Success());
        }
    }

    private sealed class ImportWorker(List<int>? attempts) : IWorker
    {
        public async Task<WorkResult> DoWorkAsync(WorkContext context)
        {
            if (attempts is not null)
            {
                lock (attempts)
                {
                    attempts.Add(context.RunAttemptCount);
                }

                return WorkResult.Success();
            }

            await context.SetProgressAsync(WorkData.From(("imported", 42)), context.StopToken);
            Console.WriteLine($"STARTED import {context.Id} attempt {context.RunAttemptCount}, progress 42 rows");
            await Task.Delay(Timeout.Infinite, context.StopToken);
            return WorkResult.Success();
        }
    }
}
