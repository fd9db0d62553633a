using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Converge.Docs.Tests;

/// <summary>
/// Compiles every ```csharp block of README.md, docs/*.md and the packages' own README.md (src/*/README.md) against
/// the Converge assemblies, .NET and ASP.NET Core, so a snippet a reader copies compiles as written.
/// </summary>
/// <remarks>
/// <para>
/// The conventions, for whoever writes the docs:
/// </para>
/// <list type="bullet">
/// <item>Each block is a C# file of its own, as a reader would paste it into Program.cs: its <c>using</c> lines, then
/// top-level statements, then type declarations; or only declarations. It is compiled with the implicit usings of a
/// new console project (<c>System</c>, <c>System.IO</c>, <c>System.Linq</c>, <c>System.Threading.Tasks</c>…),
/// nullable reference types on, the latest language version. Every other namespace it uses, Converge's included,
/// needs its <c>using</c> line in the block.</item>
/// <item>Prefer a complete block. A fragment that takes something as given says so in an HTML comment right before
/// its fence, which the rendered page does not show:
/// <c>&lt;!-- snippet: name=worker context=client,cancellationToken sdk=web --&gt;</c>.
/// <list type="bullet">
/// <item><c>sdk=web</c>: the implicit usings of an ASP.NET Core project (<c>dotnet new web</c>) instead.</item>
/// <item><c>name=…</c>: names the block, so other blocks of the same file can continue it.</item>
/// <item><c>context=a,b</c>: what the block takes as given. A named block of the same file is compiled as if it came
/// just before this one in the same file (its usings, statements and types join this block's, and so do its own
/// contexts). Any other name is a prelude of <see cref="SnippetContexts"/>: a variable such as <c>client</c> or
/// <c>builder</c>, or a stand-in for the app's own code, with the <c>using</c> lines of the file it comes from.</item>
/// </list>
/// Keep the preludes minimal: variables and stand-ins, never Converge code a reader would need to see.</item>
/// <item>Blocks in other languages (<c>sh</c>, <c>json</c>, none) are not touched; a block marked <c>cs</c> or
/// <c>c#</c> is an error, so no C# escapes the test.</item>
/// </list>
/// <para>
/// A failure names the block (markdown file and line of its fence) and each compiler error with its line in the
/// markdown file. Warnings fail too, as in this repository's own build, except those in <see cref="AllowedWarnings"/>.
/// </para>
/// </remarks>
public sealed class MarkdownSnippetTests
{
    /// <summary>Warnings a snippet may raise: a block shows a step, so it may leave a value unused.</summary>
    private static readonly ImmutableHashSet<string> AllowedWarnings = ["CS0168", "CS0219", "CS1998", "CS8321"];

    private static readonly string Root = FindRoot();

    private static readonly Lazy<IReadOnlyList<MarkdownSnippet>> AllSnippets = new(() =>
        new[] { "README.md" }
            .Concat(Directory.GetFiles(Path.Combine(Root, "docs"), "*.md").Order(StringComparer.Ordinal).Select(f => Path.GetRelativePath(Root, f)))
            .Concat(Directory.GetDirectories(Path.Combine(Root, "src")).Order(StringComparer.Ordinal).Select(d => Path.Combine(d, "README.md")).Where(File.Exists).Select(f => Path.GetRelativePath(Root, f)))
            .SelectMany(f => MarkdownSnippet.Read(Root, f))
            .ToList());

    private static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    // One compilation per output kind, which every snippet's compilation derives from, so the references are read once.
    private static readonly Lazy<CSharpCompilation> Application = new(() => BaseCompilation(OutputKind.ConsoleApplication));
    private static readonly Lazy<CSharpCompilation> Library = new(() => BaseCompilation(OutputKind.DynamicallyLinkedLibrary));

    /// <summary>Gets every C# block, as (file, line) pairs, so each block is a test case of its own.</summary>
    public static TheoryData<string, int> Snippets()
    {
        var data = new TheoryData<string, int>();
        foreach (var snippet in AllSnippets.Value)
        {
            data.Add(snippet.File, snippet.Line);
        }

        return data;
    }

    [Fact]
    public void The_docs_have_csharp_blocks_and_the_test_sees_them()
    {
        // A change to the extraction that finds nothing would otherwise pass every case.
        Assert.True(AllSnippets.Value.Count >= 30, $"Found only {AllSnippets.Value.Count} C# blocks.");
        Assert.Contains(AllSnippets.Value, s => s.File == "README.md");
        Assert.Contains(AllSnippets.Value, s => s.File == "docs/client.md");
        Assert.Contains(AllSnippets.Value, s => s.File == "src/Converge.Client/README.md");
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void Snippet_compiles(string file, int line)
    {
        var snippet = AllSnippets.Value.Single(s => s.File == file && s.Line == line);
        var blocks = new List<MarkdownSnippet>();
        var preludes = new List<string>();
        Gather(snippet, blocks, preludes, []);

        var trees = new List<SyntaxTree> { Parse(ImplicitUsings(snippet.Sdk), "implicit usings") };
        trees.AddRange(preludes.Select(p => Parse(SnippetContexts.Preludes[p], $"context {p}")));
        var tree = Parse(OneFile(blocks), snippet.File);
        trees.Add(tree);
        var hasStatements = tree.GetRoot().ChildNodes().OfType<GlobalStatementSyntax>().Any();
        var compilation = (hasStatements ? Application : Library).Value.AddSyntaxTrees(trees);

        var problems = compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error || (d.Severity == DiagnosticSeverity.Warning && !AllowedWarnings.Contains(d.Id)))
            .Select(Describe)
            .ToList();
        Assert.True(problems.Count == 0, $"The C# block at {snippet} does not compile:\n{string.Join('\n', problems)}\n\n{snippet.Code}");
    }

    /// <summary>Collects the named blocks a block continues (theirs first, transitively) and the preludes they all need.</summary>
    private static void Gather(MarkdownSnippet snippet, List<MarkdownSnippet> blocks, List<string> preludes, HashSet<MarkdownSnippet> visiting)
    {
        Assert.True(visiting.Add(snippet), $"{snippet}: its contexts form a cycle.");
        foreach (var context in snippet.Contexts)
        {
            var named = AllSnippets.Value.Where(s => s.File == snippet.File && s.Name == context).ToList();
            Assert.True(named.Count <= 1, $"{snippet}: several blocks of {snippet.File} are named '{context}'.");
            if (named.Count == 1)
            {
                if (!blocks.Contains(named[0]))
                {
                    Gather(named[0], blocks, preludes, visiting);
                }
            }
            else
            {
                Assert.True(
                    SnippetContexts.Preludes.ContainsKey(context),
                    $"{snippet}: context '{context}' is neither a named block of {snippet.File} nor a prelude ({string.Join(", ", SnippetContexts.Preludes.Keys)}).");
                if (!preludes.Contains(context))
                {
                    preludes.Add(context);
                }
            }
        }

        visiting.Remove(snippet);
        blocks.Add(snippet);
    }

    /// <summary>
    /// Joins blocks into one C# file, as if each came after the one before it in a Program.cs: all their usings, then all
    /// their statements, then all their declarations, each marked with a #line directive so errors name the markdown line.
    /// </summary>
    private static string OneFile(List<MarkdownSnippet> blocks)
    {
        var usings = new StringBuilder();
        var statements = new StringBuilder();
        var declarations = new StringBuilder();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var block in blocks)
        {
            var root = (CompilationUnitSyntax)Parse(block.Code, block.File).GetRoot();
            foreach (var node in root.Externs.Cast<SyntaxNode>().Concat(root.Usings).Concat(root.AttributeLists))
            {
                // Blocks that continue one another often repeat a using line; the file needs it once.
                if (seen.Add(node.ToString()))
                {
                    Append(usings, block, node);
                }
            }

            foreach (var member in root.Members)
            {
                Append(member is GlobalStatementSyntax ? statements : declarations, block, member);
            }
        }

        return usings.Append(statements).Append(declarations).ToString();

        static void Append(StringBuilder text, MarkdownSnippet block, SyntaxNode node)
        {
            // The block's first line follows its fence.
            var line = block.Line + 1 + node.GetLocation().GetLineSpan().StartLinePosition.Line;
            text.Append(CultureInfo.InvariantCulture, $"#line {line} \"{block.File}\"\n").Append(node.ToString()).Append('\n');
        }
    }

    private static string Describe(Diagnostic diagnostic)
    {
        var span = diagnostic.Location.GetMappedLineSpan();
        var where = span.IsValid ? $"{span.Path}:{span.StartLinePosition.Line + 1}" : "(no location)";
        return $"  {where}: {diagnostic.Severity.ToString().ToLowerInvariant()} {diagnostic.Id}: {diagnostic.GetMessage(CultureInfo.InvariantCulture)}";
    }

    private static SyntaxTree Parse(string code, string path) => CSharpSyntaxTree.ParseText(code, ParseOptions, path);

    private static string ImplicitUsings(string sdk)
    {
        // The global usings the .NET SDK generates for a new project (ImplicitUsings enable).
        string[] console = ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"];
        string[] web =
        [
            .. console, "System.Net.Http.Json", "Microsoft.AspNetCore.Builder", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Http",
            "Microsoft.AspNetCore.Routing", "Microsoft.Extensions.Configuration", "Microsoft.Extensions.DependencyInjection",
            "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging",
        ];
        var namespaces = sdk switch
        {
            "console" => console,
            "web" => web,
            _ => throw new InvalidDataException($"Unknown sdk '{sdk}': console (the default) or web."),
        };
        return string.Concat(namespaces.Select(n => $"global using global::{n};\n"));
    }

    private static CSharpCompilation BaseCompilation(OutputKind kind) => CSharpCompilation.Create(
        kind == OutputKind.ConsoleApplication ? "SnippetApp" : "SnippetLibrary",
        syntaxTrees: [],
        references: References.Value,
        options: new CSharpCompilationOptions(kind, nullableContextOptions: NullableContextOptions.Enable));

    private static List<MetadataReference> LoadReferences()
    {
        // What this test runs on: .NET, ASP.NET Core and the packages it references (the runtime's trusted platform
        // assemblies), and the Converge assemblies copied next to it.
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "Converge.*.dll"))
            .Where(p => !Path.GetFileName(p).StartsWith("Converge.Docs.Tests", StringComparison.Ordinal));
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var path in paths)
        {
            byName.TryAdd(Path.GetFileName(path), path);
        }

        return byName.Values.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Converge.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Converge.slnx above {AppContext.BaseDirectory}.");
    }
}
