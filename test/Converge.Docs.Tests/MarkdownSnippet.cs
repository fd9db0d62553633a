using System.Text.RegularExpressions;

namespace Converge.Docs.Tests;

/// <summary>A fenced C# block of a markdown file, with the options of the <c>&lt;!-- snippet: … --&gt;</c> comment before it.</summary>
/// <param name="File">The markdown file, relative to the repository root, with forward slashes.</param>
/// <param name="Line">The 1-based line of the opening fence.</param>
/// <param name="Code">The block's text, without the fences and without the indentation of the opening fence.</param>
/// <param name="Name">The name other blocks of the same file use it by (<c>name=…</c>), or <see langword="null"/>.</param>
/// <param name="Contexts">What the block is compiled with (<c>context=a,b</c>): named blocks of the same file or the test's preludes.</param>
/// <param name="Sdk">The SDK whose implicit usings apply (<c>sdk=web</c>); <c>console</c> by default.</param>
internal sealed record MarkdownSnippet(string File, int Line, string Code, string? Name, IReadOnlyList<string> Contexts, string Sdk)
{
    private static readonly Regex Fence = new(@"^(?<indent>\s*)```(?<info>[^`]*)$", RegexOptions.CultureInvariant);
    private static readonly Regex Comment = new(@"^\s*<!--\s*snippet:(?<options>.*?)-->\s*$", RegexOptions.CultureInvariant);

    /// <summary>Reads every fenced C# block of a markdown file; blocks in other languages are passed over.</summary>
    /// <param name="root">The repository root.</param>
    /// <param name="relativePath">The file, relative to the root.</param>
    /// <returns>The blocks, in file order.</returns>
    public static IReadOnlyList<MarkdownSnippet> Read(string root, string relativePath)
    {
        var lines = System.IO.File.ReadAllLines(Path.Combine(root, relativePath));
        var snippets = new List<MarkdownSnippet>();
        for (var i = 0; i < lines.Length; i++)
        {
            var open = Fence.Match(lines[i]);
            if (!open.Success)
            {
                continue;
            }

            var info = open.Groups["info"].Value.Trim();
            var indent = open.Groups["indent"].Value.Length;
            var start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && lines[i].Trim() != "```"; i++)
            {
                body.Add(lines[i].Length >= indent && string.IsNullOrWhiteSpace(lines[i][..indent]) ? lines[i][indent..] : lines[i].TrimStart());
            }

            if (i == lines.Length)
            {
                throw new InvalidDataException($"{relativePath}:{start + 1}: the block is never closed.");
            }

            if (info is "cs" or "c#" or "C#")
            {
                throw new InvalidDataException($"{relativePath}:{start + 1}: mark C# blocks as ```csharp, so they are compiled.");
            }

            if (info != "csharp")
            {
                continue;
            }

            var options = OptionsBefore(lines, start, relativePath);
            snippets.Add(new MarkdownSnippet(
                relativePath.Replace('\\', '/'),
                start + 1,
                string.Join('\n', body),
                options.GetValueOrDefault("name"),
                options.TryGetValue("context", out var contexts) ? contexts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [],
                options.GetValueOrDefault("sdk") ?? "console"));
        }

        return snippets;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{File}:{Line}";

    private static Dictionary<string, string> OptionsBefore(string[] lines, int fence, string file)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        var previous = fence - 1;
        while (previous >= 0 && string.IsNullOrWhiteSpace(lines[previous]))
        {
            previous--;
        }

        var comment = previous >= 0 ? Comment.Match(lines[previous]) : Match.Empty;
        if (!comment.Success)
        {
            return options;
        }

        foreach (var option in comment.Groups["options"].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = option.Split('=', 2);
            if (parts.Length != 2 || parts[0] is not ("name" or "context" or "sdk"))
            {
                throw new InvalidDataException($"{file}:{previous + 1}: unknown snippet option '{option}' (name=, context= or sdk=).");
            }

            options[parts[0]] = parts[1];
        }

        return options;
    }
}
