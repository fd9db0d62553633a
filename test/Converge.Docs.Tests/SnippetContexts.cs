namespace Converge.Docs.Tests;

/// <summary>
/// The preludes a markdown C# block can name with <c>&lt;!-- snippet: context=… --&gt;</c>: the few variables a fragment
/// takes as given, each named after the variable it declares. Each is a static class brought in with
/// <c>global using static</c>, so the block reads its members as plain names, and a block that declares the same name
/// itself simply hides it. A prelude also brings the namespaces of its variables' types, as the file the fragment comes
/// from would (<c>global using</c>). They are only compiled, never run.
/// </summary>
internal static class SnippetContexts
{
    /// <summary>Gets the preludes by name.</summary>
    public static IReadOnlyDictionary<string, string> Preludes { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        // An open client, as docs/client.md's first section opens it.
        ["client"] = Prelude("ClientContext", ["Converge.Client"], "public static ConvergeClient client = null!;"),

        // The cancellation token of the method a fragment runs in.
        ["cancellationToken"] = Prelude("CancellationContext", [], "public static CancellationToken cancellationToken;"),

        // Collections of the document type docs/client.md declares in its second section.
        ["todos"] = Prelude(
            "TodosContext",
            ["Converge.Client"],
            """
            public sealed record Todo(string Title, bool Done = false, int Priority = 0);
            public static DocumentCollection<Todo> todos = null!;
            public static DocumentCollection<Todo> shared = null!;
            """),

        // The builder of an ASP.NET Core app (WebApplication.CreateBuilder(args)); the block says sdk=web.
        ["web-builder"] = Prelude("WebBuilderContext", ["Microsoft.AspNetCore.Builder"], "public static WebApplicationBuilder builder = null!;"),

        // The built ASP.NET Core app (builder.Build()); the block says sdk=web.
        ["app"] = Prelude("WebAppContext", ["Microsoft.AspNetCore.Builder"], "public static WebApplication app = null!;"),

        // The builder of a generic host (Host.CreateApplicationBuilder(args)), with the usings of `dotnet new worker`.
        ["host-builder"] = Prelude(
            "HostBuilderContext",
            ["Microsoft.Extensions.Configuration", "Microsoft.Extensions.DependencyInjection", "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging"],
            "public static HostApplicationBuilder builder = null!;"),

        // The work manager, as docs/work.md's quick start takes it from the host.
        ["work"] = Prelude("WorkContext", ["Converge.Work"], "public static IWorkManager work = null!;"),

        // docs/work.md's stand-ins for the app's own code: where its work store goes, and what a task callback does.
        ["work-app"] = Prelude(
            "WorkAppContext",
            ["Converge.Work"],
            """
            public static string dbPath = "work.db";
            public static Task<bool> SyncAsync(WorkData input) => Task.FromResult(input is not null);
            """),

        // docs/work.md's stand-in for "your implementation" of the ISyncService its worker block declares.
        ["http-sync-service"] = Prelude(
            "HttpSyncServiceContext",
            [],
            """
            public sealed class HttpSyncService : ISyncService
            {
                public Task<bool> SyncAsync(CancellationToken cancellationToken) => Task.FromResult(true);
            }
            """),
    };

    private static string Prelude(string className, string[] namespaces, string members) => $$"""
        global using static Converge.Docs.Snippets.{{className}};
        {{string.Concat(namespaces.Select(n => $"global using {n};\n"))}}

        namespace Converge.Docs.Snippets;

        public static class {{className}}
        {
            {{members}}
        }
        """;
}
