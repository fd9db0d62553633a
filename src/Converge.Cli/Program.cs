using System.CommandLine;
using Converge.Cli;

var root = new RootCommand("Converge: offline-first data sync for .NET. Run 'converge demo' to see it work.");
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(ClientCommands.Create());
root.Subcommands.Add(WorkCommands.Create());
return await root.Parse(args).InvokeAsync();
