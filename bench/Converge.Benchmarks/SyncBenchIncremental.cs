using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Converge.Benchmarks;

/// <summary>Incremental pull of the sync benchmark: 10 changes pulled by a device that holds a scope of 1,000 documents, and one that holds a scope of 1,000,000.</summary>
/// <remarks>
/// Each scope lives on its own server process with its own store, and is held by its own reader client (its own file), so
/// the large side pays for a large server store and a large local store. The changes are written and pushed by a second
/// device; the figure is the reader's whole sync round (an empty push and the pull of the 10 changes), as the device
/// measures it. Rounds alternate between the two sides, and the medians are compared.
/// </remarks>
internal static class SyncBenchIncremental
{
    private const int SmallScope = 1_000;
    private const int Changes = 10;
    private const int Rounds = 101;
    private const int WarmupRounds = 100;
    private const int LoadChunk = 50_000;

    public sealed record Figures(int LargeScope, double SmallMs, double LargeMs, double LoadSeconds, double LargeServerRssMb)
    {
        public double Ratio => LargeMs / SmallMs;

        public JsonObject ToJson() => new()
        {
            ["changes"] = Changes,
            ["rounds"] = Rounds,
            ["small_scope"] = SmallScope,
            ["large_scope"] = LargeScope,
            ["small_ms"] = Math.Round(SmallMs, 3),
            ["large_ms"] = Math.Round(LargeMs, 3),
            ["ratio"] = Math.Round(Ratio, 3),
            ["load_s"] = Math.Round(LoadSeconds, 1),
            ["large_server_peak_rss_mb"] = Math.Round(LargeServerRssMb, 1),
        };
    }

    public static async Task<Figures> RunAsync(string directory, int largeScope, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        await using var small = BenchChild.Start("sync", "server", "--db", Path.Combine(directory, "small.db"));
        await using var large = BenchChild.Start("sync", "server", "--db", Path.Combine(directory, "large.db"));
        var smallUrl = await small.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        var largeUrl = await large.WaitForAsync("READY", TimeSpan.FromMinutes(1));
        await using var writer = BenchChild.Start("sync", "device");
        await using var reader = BenchChild.Start("sync", "device");
        await writer.SendAsync($"open small {Path.Combine(directory, "w-small.db")} {smallUrl} inc");
        await writer.SendAsync($"open large {Path.Combine(directory, "w-large.db")} {largeUrl} inc");
        await reader.SendAsync($"open small {Path.Combine(directory, "r-small.db")} {smallUrl} inc");
        await reader.SendAsync($"open large {Path.Combine(directory, "r-large.db")} {largeUrl} inc");

        var load = Stopwatch.StartNew();
        await LoadAsync(writer, reader, "small", SmallScope);
        await LoadAsync(writer, reader, "large", largeScope);
        load.Stop();

        var random = new Random(42);
        var samples = new Dictionary<string, List<double>> { ["small"] = [], ["large"] = [] };
        for (var round = -WarmupRounds; round < Rounds; round++)
        {
            // Alternate which side goes first, so drift on the machine does not favour one. The first rounds warm both
            // servers up (the small one has done little else) and are not counted.
            foreach (var side in round % 2 == 0 ? new[] { "small", "large" } : ["large", "small"])
            {
                var size = side == "small" ? SmallScope : largeScope;
                var ids = new HashSet<string>(StringComparer.Ordinal);
                while (ids.Count < Changes)
                {
                    ids.Add(BenchDoc.Id(random.Next(size)));
                }

                await writer.SendAsync($"patch {side} docs r{round} {string.Join(' ', ids)}");
                await writer.SendAsync($"sync {side}");
                var pull = await reader.SendAsync($"sync {side}");
                if (int.Parse(pull[3], CultureInfo.InvariantCulture) != Changes)
                {
                    throw new InvalidOperationException($"Incremental pull from the {side} scope brought {pull[3]} documents.");
                }

                if (round >= 0)
                {
                    samples[side].Add(SyncBench.Seconds(pull[0], pull[1]) * 1000);
                }
            }
        }

        return new Figures(largeScope, Median(samples["small"]), Median(samples["large"]), load.Elapsed.TotalSeconds, large.PeakRssMb());
    }

    /// <summary>The writer writes and pushes the scope's documents in chunks; the reader downloads them all.</summary>
    private static async Task LoadAsync(BenchChild writer, BenchChild reader, string side, int count)
    {
        for (var from = 0; from < count; from += LoadChunk)
        {
            var chunk = Math.Min(LoadChunk, count - from);
            await writer.SendAsync($"write {side} docs {from} {chunk} 5000", TimeSpan.FromMinutes(10));
            await writer.SendAsync($"sync {side}", TimeSpan.FromMinutes(10));
        }

        await reader.SendAsync($"pull-until {side} {count}", TimeSpan.FromMinutes(20));
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
