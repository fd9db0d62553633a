using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Converge.Server.Tests;

/// <summary>Every package logs with event ids of its own band, each id once, and each one listed in the server's docs.</summary>
/// <remarks>
/// Covers the shipped assemblies this test project loads: the protocol, the server and its PostgreSQL store. An operator
/// filters and alerts on event ids, so an id must name one event whichever package logs it.
/// </remarks>
public sealed partial class LogEventIdTests
{
    /// <summary>The band of event ids each assembly logs in; bands never overlap.</summary>
    private static readonly (Assembly Assembly, int First, int Last)[] Bands =
    [
        (typeof(Protocol.HybridTimestamp).Assembly, 0, -1), // logs nothing: no I/O
        (typeof(ConvergeServerOptions).Assembly, 2000, 2099),
        (typeof(PostgreSql.PostgreSqlSyncStore).Assembly, 4000, 4099),
    ];

    [Fact]
    public void Each_assembly_logs_only_ids_of_its_own_band_and_the_bands_do_not_overlap()
    {
        foreach (var (assembly, first, last) in Bands)
        {
            foreach (var (method, id) in EventIds(assembly))
            {
                Assert.True(id >= first && id <= last, $"{Name(method)} logs event id {id}, outside {assembly.GetName().Name}'s band {first}–{last}.");
            }
        }

        var bands = Bands.Where(b => b.Last >= b.First).OrderBy(b => b.First).ToArray();
        for (var i = 1; i < bands.Length; i++)
        {
            Assert.True(bands[i].First > bands[i - 1].Last, $"The bands of {bands[i - 1].Assembly.GetName().Name} and {bands[i].Assembly.GetName().Name} overlap.");
        }
    }

    [Fact]
    public void Each_event_id_names_one_event_across_the_assemblies()
    {
        var events = Bands.SelectMany(b => EventIds(b.Assembly)).ToList();

        Assert.NotEmpty(events);
        foreach (var group in events.GroupBy(e => e.Id).Where(g => g.Count() > 1))
        {
            Assert.Fail($"Event id {group.Key} is used by {string.Join(" and ", group.Select(e => Name(e.Method)))}.");
        }
    }

    [Fact]
    public void Each_event_id_is_listed_in_the_server_docs_and_the_docs_list_no_other()
    {
        var path = Path.Combine(RepositoryRoot(), "docs", "server.md");
        var listed = File.ReadLines(path).Select(line => TableRow().Match(line)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        var logged = Bands.SelectMany(b => EventIds(b.Assembly)).ToList();

        foreach (var (method, id) in logged)
        {
            Assert.True(listed.Contains(id), $"Event id {id} ({Name(method)}) is not in the log table of docs/server.md.");
        }

        Assert.Empty(listed.Except(logged.Select(e => e.Id)));
    }

    /// <summary>The event ids of an assembly's source-generated log methods.</summary>
    private static IEnumerable<(MethodInfo Method, int Id)> EventIds(Assembly assembly) =>
        from type in assembly.GetTypes()
        from method in type.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
        let attribute = method.GetCustomAttribute<LoggerMessageAttribute>()
        where attribute is not null
        select (method, attribute.EventId);

    private static string Name(MethodInfo method) => $"{method.DeclaringType!.Assembly.GetName().Name}: {method.DeclaringType.FullName}.{method.Name}";

    /// <summary>The folder of the solution file, above the test's output folder.</summary>
    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Converge.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Converge.slnx above {AppContext.BaseDirectory}: the test reads docs/server.md from the repository.");
    }

    /// <summary>A row of the log table: <c>| 2000 | Information | …</c>.</summary>
    [GeneratedRegex(@"^\|\s*(\d{4})\s*\|\s*(Trace|Debug|Information|Warning|Error|Critical)\s*\|")]
    private static partial Regex TableRow();
}
