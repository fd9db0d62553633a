using System.Reflection;
using System.Xml.Linq;

namespace Converge.EndToEnd.Tests;

/// <summary>Every package and project a shipped library references is one its compiled assembly uses.</summary>
/// <remarks>
/// An app that installs a Converge package restores everything the package depends on, so a reference nothing uses
/// costs every app. The compiler drops references to assemblies no code uses, which makes the compiled assembly's
/// references the list of what is used. Analyzer packages (<c>PrivateAssets="all"</c>) do not flow to apps and are left out.
/// </remarks>
public sealed class PackageReferenceTests
{
    /// <summary>The shipped libraries, by their project folder under src/.</summary>
    public static TheoryData<string> Libraries() =>
    [
        "Converge.Protocol",
        "Converge.Work",
        "Converge.Work.PostgreSql",
        "Converge.Work.Testing",
        "Converge.Client",
        "Converge.Client.Work",
        "Converge.Server",
        "Converge.Server.PostgreSql",
        "Converge.Components",
    ];

    [Theory]
    [MemberData(nameof(Libraries))]
    public void A_shipped_library_references_only_what_its_code_uses(string project)
    {
        var path = Path.Combine(LogEventIdTests.RepositoryRoot(), "src", project, project + ".csproj");
        var csproj = XDocument.Load(path);
        var declared = csproj.Descendants("PackageReference")
            .Where(r => !string.Equals((string?)r.Attribute("PrivateAssets"), "all", StringComparison.OrdinalIgnoreCase))
            .Select(r => (string)r.Attribute("Include")!)
            .Concat(csproj.Descendants("ProjectReference").Select(r => Path.GetFileNameWithoutExtension(((string)r.Attribute("Include")!).Replace('\\', '/'))))
            .ToList();
        var used = Assembly.Load(project).GetReferencedAssemblies().Select(a => a.Name).ToHashSet(StringComparer.Ordinal);

        var unused = declared.Where(d => !used.Contains(d)).ToList();

        Assert.True(unused.Count == 0, $"{project}.csproj references {string.Join(", ", unused)}, which its compiled code does not use: remove the reference.");
    }
}
