using System.Collections.Immutable;

namespace Converge.Work;

/// <summary>Combines a work item's own input with the outputs of its prerequisites into the input it runs with.</summary>
/// <remarks>Mergers are persisted by <see cref="Name"/>, so a chain enqueued before a restart merges the same way after it.</remarks>
public abstract class InputMerger
{
    private protected InputMerger()
    {
    }

    /// <summary>Gets the merger that lets later values overwrite earlier ones under the same key (the default).</summary>
    public static InputMerger Overwriting { get; } = new OverwritingInputMerger();

    /// <summary>Gets the merger that collects the values of each key into an array.</summary>
    public static InputMerger ArrayCreating { get; } = new ArrayCreatingInputMerger();

    /// <summary>Gets the stable name the merger is stored under.</summary>
    public abstract string Name { get; }

    /// <summary>Merges inputs, in order: the work's own input first, then each prerequisite's output.</summary>
    /// <param name="inputs">The inputs to merge.</param>
    /// <returns>The merged data.</returns>
    public abstract WorkData Merge(IReadOnlyList<WorkData> inputs);

    internal static InputMerger FromName(string? name) => name switch
    {
        null or "" or OverwritingInputMerger.StableName => Overwriting,
        ArrayCreatingInputMerger.StableName => ArrayCreating,
        _ => throw new InvalidOperationException($"Unknown input merger '{name}'."),
    };

    private sealed class OverwritingInputMerger : InputMerger
    {
        public const string StableName = "overwriting";

        public override string Name => StableName;

        public override WorkData Merge(IReadOnlyList<WorkData> inputs)
        {
            var builder = new WorkDataBuilder();
            foreach (var input in inputs)
            {
                builder.PutAll(input);
            }

            return builder.Build();
        }
    }

    private sealed class ArrayCreatingInputMerger : InputMerger
    {
        public const string StableName = "array-creating";

        public override string Name => StableName;

        public override WorkData Merge(IReadOnlyList<WorkData> inputs)
        {
            // Same rules as WorkManager's ArrayCreatingInputMerger: values of one key are concatenated into an array of
            // their common element type; a key whose values disagree on type is an error.
            var merged = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var input in inputs)
            {
                foreach (var (key, value) in input)
                {
                    merged[key] = merged.TryGetValue(key, out var existing) ? Concat(key, existing, value) : ToArray(value);
                }
            }

            return WorkData.Create(merged.ToImmutableSortedDictionary(StringComparer.Ordinal));
        }

        private static object ToArray(object value) => value switch
        {
            string s => new[] { s },
            long l => new[] { l },
            double d => new[] { d },
            bool b => new[] { b },
            _ => value,
        };

        private static object Concat(string key, object existing, object value) => (existing, ToArray(value)) switch
        {
            (string[] a, string[] b) => a.Concat(b).ToArray(),
            (long[] a, long[] b) => a.Concat(b).ToArray(),
            (double[] a, double[] b) => a.Concat(b).ToArray(),
            (long[] a, double[] b) => a.Select(x => (double)x).Concat(b).ToArray(),
            (double[] a, long[] b) => a.Concat(b.Select(x => (double)x)).ToArray(),
            (bool[] a, bool[] b) => a.Concat(b).ToArray(),
            _ => throw new InvalidOperationException(
                $"Cannot merge the values of key '{key}': {existing.GetType().Name} and {value.GetType().Name} differ in type."),
        };
    }
}
