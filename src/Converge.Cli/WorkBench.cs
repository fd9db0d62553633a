using System.CommandLine;

namespace Converge.Cli;

internal static class WorkBench
{
    public static Command Create()
    {
        var command = new Command("work", "Converge.Work throughput, latency, durability levels and restart, against Quartz.NET and Hangfire.");
        command.SetAction(_ => 0);
        return command;
    }
}
