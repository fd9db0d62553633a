using System.CommandLine;
using Converge.Benchmarks;

// End-to-end workloads with figures for docs/benchmarks.md. Each verb starts its server and devices as child processes
// of this same program (hidden verbs), so every process of a run has the same build and runtime settings.
var root = new RootCommand("Converge benchmarks: run a workload and print (and optionally write as JSON) its figures.");
root.Subcommands.Add(WorkBench.Create());
root.Subcommands.Add(SyncBench.Create());
root.Subcommands.Add(LiveBench.Create());
root.Subcommands.Add(FanoutBench.Create());
root.Subcommands.Add(TenantsBench.Create());
return await root.Parse(args).InvokeAsync();
