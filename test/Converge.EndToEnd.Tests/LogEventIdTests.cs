using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Converge.EndToEnd.Tests;

/// <summary>Every package logs with event ids of its own band, each id once, and each one listed in its package's docs.</summary>
/// <remarks>
/// Covers every shipped package. An operator filters and alerts on event ids, so an id must name one event whichever
/// package logs it, and the docs must say what it is.
/// </remarks>
public sealed partial class LogEventIdTests
{
    /// <summary>The band of event ids each assembly logs in; bands never overlap.</summary>
    private static readonly (Assembly Assembly, int First, int Last, string Docs)[] Bands =
    [
        (typeof(Protocol.HybridTimestamp).Assembly, 0, -1, ""), // logs nothing: no I/O
        (typeof(Work.WorkManager).Assembly, 1000, 1099, "work.md"),
        (typeof(Work.PostgreSqlWorkStoreOptions).Assembly, 1100, 1199, "work.md"),
        (typeof(Server.ConvergeServerOptions).Assembly, 2000, 2099, "server.md"),
        (typeof(Client.ConvergeClient).Assembly, 3000, 3099, "client.md"),
        (typeof(Client.SyncWorker).Assembly, 3100, 3199, "client.md"),
        (typeof(Server.PostgreSql.PostgreSqlSyncStore).Assembly, 4000, 4099, "server.md"),
        (typeof(Work.Testing.WorkTestDriver).Assembly, 0, -1, ""), // logs nothing
        (typeof(Components.SyncStatus).Assembly, 0, -1, ""), // logs nothing: it shows the client's state
    ];

    [Fact]
    public void Each_assembly_logs_only_ids_of_its_own_band_and_the_bands_do_not_overlap()
    {
        foreach (var (assembly, first, last, _) in Bands)
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

    [Theory]
    [InlineData("work.md")]
    [InlineData("server.md")]
    [InlineData("client.md")]
    public void Each_event_id_is_listed_in_its_package_docs_and_the_docs_list_no_other(string docs)
    {
        var path = Path.Combine(RepositoryRoot(), "docs", docs);
        var listed = File.ReadLines(path).Select(line => TableRow().Match(line)).Where(m => m.Success).SelectMany(m => Ids(m.Groups[1].Value)).ToHashSet();
        var logged = Bands.Where(b => b.Docs == docs).SelectMany(b => EventIds(b.Assembly)).ToList();

        Assert.NotEmpty(logged);
        foreach (var (method, id) in logged)
        {
            Assert.True(listed.Contains(id), $"Event id {id} ({Name(method)}) is not in the log table of docs/{docs}.");
        }

        Assert.Empty(listed.Except(logged.Select(e => e.Id)));
    }

    [Fact]
    public void Every_shipped_package_has_a_band()
    {
        var shipped = Directory.GetDirectories(Path.Combine(RepositoryRoot(), "src"))
            .Select(Path.GetFileName)
            .Where(name => name!.StartsWith("Converge.", StringComparison.Ordinal) && name != "Converge.Cli")
            .Order(StringComparer.Ordinal);

        Assert.Equal(shipped, Bands.Select(b => b.Assembly.GetName().Name).Order(StringComparer.Ordinal));
    }

    /// <summary>The ids of a table row's first cell: <c>2000</c>, <c>1010 / 1011</c>, <c>3000, 3001</c> or a range <c>3010–3015</c>.</summary>
    private static IEnumerable<int> Ids(string cell)
    {
        foreach (var part in cell.Split(['/', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var bounds = part.Split('–', StringSplitOptions.TrimEntries).Select(b => int.Parse(b, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            for (var id = bounds[0]; id <= bounds[^1]; id++)
            {
                yield return id;
            }
        }
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
    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Converge.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Converge.slnx above {AppContext.BaseDirectory}: the test reads docs/ from the repository.");
    }

    /// <summary>A row of a log table, whose first cell holds only event ids: <c>| 2000 | Information | …</c>, <c>| 3010–3015 | …</c>.</summary>
    [GeneratedRegex(@"^\|\s*(\d{4}(?:\s*(?:/|,|–)\s*\d{4})*)\s*\|")]
    private static partial Regex TableRow();
}
