using System.Text.RegularExpressions;

namespace Converge.Work;

/// <summary>Options of the PostgreSQL work store.</summary>
public sealed partial class PostgreSqlWorkStoreOptions
{
    /// <summary>Gets or sets the schema that holds the work tables; it is created if missing.</summary>
    /// <value>The default is <c>converge_work</c>. Lower-case letters, digits and underscores.</value>
    public string Schema { get; set; } = "converge_work";

    /// <summary>Gets or sets how long a node's claim on a running work lasts without renewal before another node takes the work over.</summary>
    /// <value>
    /// The default is 30 seconds. A node renews its claims every third of this, so a node that dies has its work run
    /// elsewhere between one and one and a third leases later. Longer leases survive longer stalls (a long garbage
    /// collection, a paused VM); shorter ones recover sooner.
    /// </value>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the name this node's claims are recorded under.</summary>
    /// <value>By default the machine name, the process id and a random suffix, so every start is a new node.</value>
    public string? NodeName { get; set; }

    /// <summary>Checks the options and lists what is wrong.</summary>
    /// <returns>The problems found; empty when the options are valid.</returns>
    internal IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!SchemaName().IsMatch(Schema ?? ""))
        {
            errors.Add($"Schema must be 1 to 63 lower-case letters, digits or underscores, starting with a letter or underscore; it is '{Schema}'.");
        }

        if (LeaseDuration < TimeSpan.FromSeconds(1) || LeaseDuration > TimeSpan.FromHours(1))
        {
            errors.Add($"LeaseDuration must be between 1 second and 1 hour; it is {LeaseDuration}.");
        }

        if (NodeName is { } node && (string.IsNullOrWhiteSpace(node) || node.Length > 200 || node.Contains('|', StringComparison.Ordinal) || node.Any(char.IsControl)))
        {
            errors.Add("NodeName must be 1 to 200 characters, without '|' or control characters.");
        }

        return errors;
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
