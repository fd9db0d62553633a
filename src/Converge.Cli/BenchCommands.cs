using System.CommandLine;

namespace Converge.Cli;

/// <summary>`converge bench ...`: end-to-end workloads with figures for docs/benchmarks.md.</summary>
internal static class BenchCommands
{
    public static Command Create()
    {
        var bench = new Command("bench", "Run benchmarks and print (and optionally write as JSON) their figures.");
        bench.Subcommands.Add(WorkBench.Create());
        bench.Subcommands.Add(SyncBench.Create());
        bench.Subcommands.Add(LiveBench.Create());
        bench.Subcommands.Add(FanoutBench.Create());
        bench.Subcommands.Add(TenantsBench.Create());
        return bench;
    }
}
