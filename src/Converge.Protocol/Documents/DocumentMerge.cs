using System.Globalization;
using System.Text.Json;
using Converge.Protocol.Messages;

namespace Converge.Protocol.Documents;

/// <summary>The outcome of applying one mutation to a document.</summary>
/// <param name="State">The document's new state (the old one when nothing changed).</param>
/// <param name="Changed">Whether the state changed, so the document takes the new revision.</param>
/// <param name="Status">What became of the mutation.</param>
/// <param name="Reason">Why it was merged or rejected.</param>
/// <param name="ConflictFields">Under <see cref="ConflictPolicy.Manual"/>, the fields that wait for a person.</param>
public sealed record MergeOutcome(DocumentState State, bool Changed, MutationStatus Status, string? Reason, IReadOnlyList<ConflictField>? ConflictFields);

/// <summary>The server's merge rules as pure functions: a document state and a mutation in, a new state out.</summary>
/// <remarks>
/// <para>
/// A field is <em>concurrent</em> with a mutation when the server changed it after the mutation's
/// <see cref="Mutation.BaseRevision"/>, by another replica. Only concurrent edits of the same field go to the policy;
/// edits of different fields always merge, and a replica never conflicts with its own earlier writes.
/// </para>
/// <para>
/// Under <see cref="ConflictPolicy.LastWriterWins"/> with either <see cref="DeleteRule"/>, and for increments, the
/// result does not depend on the order in which the replicas' mutations arrive, so every replica converges.
/// </para>
/// </remarks>
public static class DocumentMerge
{
    /// <summary>Applies a put, patch, delete or increment.</summary>
    /// <param name="current">The document's state, or <see langword="null"/> when the server has never seen it.</param>
    /// <param name="mutation">The mutation, its timestamp already checked against the server's clock.</param>
    /// <param name="writer">The replica that sent the mutation.</param>
    /// <param name="revision">The revision the document takes if it changes.</param>
    /// <param name="rules">The collection's rules.</param>
    /// <returns>The outcome.</returns>
    /// <exception cref="ArgumentException">The mutation is a <see cref="MutationKind.Resolve"/>; use <see cref="ApplyResolution"/>.</exception>
    public static MergeOutcome Apply(DocumentState? current, Mutation mutation, ulong writer, long revision, CollectionRules rules)
    {
        ArgumentNullException.ThrowIfNull(mutation);
        ArgumentNullException.ThrowIfNull(rules);
        var outcome = ApplyCore(current, mutation, writer, revision, rules);
        if (rules.Delete == DeleteRule.UpdateWins && mutation.Kind != MutationKind.Delete && outcome.Status != MutationStatus.Rejected && !outcome.State.Deleted)
        {
            // Every update counts against a concurrent delete, also one whose values all lost, so the delete is decided
            // the same whichever arrives first.
            return outcome with { Changed = true, State = outcome.State.WithUpdate(writer, revision) with { Revision = revision } };
        }

        return outcome;
    }

    private static MergeOutcome ApplyCore(DocumentState? current, Mutation mutation, ulong writer, long revision, CollectionRules rules)
    {
        ArgumentNullException.ThrowIfNull(mutation);
        ArgumentNullException.ThrowIfNull(rules);
        if (mutation.Kind == MutationKind.Resolve)
        {
            throw new ArgumentException("A resolve mutation is applied with ApplyResolution.", nameof(mutation));
        }

        if (mutation.Kind == MutationKind.Increment && CheckIncrement(current, mutation) is { } invalid)
        {
            return new MergeOutcome(current ?? DocumentState.Empty, false, MutationStatus.Rejected, invalid, null);
        }

        if (mutation.Kind == MutationKind.Delete)
        {
            return ApplyDelete(current, mutation, writer, revision, rules);
        }

        if (current is null)
        {
            if (mutation.BaseRevision > 0 && mutation.Kind != MutationKind.Put && rules.Delete == DeleteRule.DeleteWins)
            {
                // The writer saw this document, and the server no longer has it: it was deleted and its tombstone
                // collected since. A patch or increment of it would bring back a fragment; a put, the whole
                // document, may re-create it.
                return new MergeOutcome(DocumentState.Empty, false, MutationStatus.Merged, "The document was deleted; the write was discarded.", null);
            }

            return Changed(Create(mutation, writer, revision), MutationStatus.Applied, null);
        }

        // The last delete (kept after a revival) is concurrent with this write when the writer had not seen it.
        var concurrentDelete = current.LastDeleteByOtherThan(writer) > mutation.BaseRevision;
        if (current.Deleted)
        {
            if (!concurrentDelete && mutation.Kind == MutationKind.Put)
            {
                // The writer saw the delete: its put revives the document over the tombstone's fields (none under
                // DeleteWins), so the result is the same whichever concurrent writes arrive before or after it.
                return Revive(current, mutation, writer, revision, rules);
            }

            if (!concurrentDelete || rules.Delete == DeleteRule.DeleteWins)
            {
                return new MergeOutcome(current, false, MutationStatus.Merged, "The document was deleted; the write was discarded.", null);
            }

            return Revive(current, mutation, writer, revision, rules);
        }

        if (concurrentDelete && rules.Delete == DeleteRule.DeleteWins)
        {
            // Deleted and re-created since the writer's base: the delete wins over this concurrent update, as it
            // would have had the update arrived before the delete.
            return new MergeOutcome(current, false, MutationStatus.Merged, "The document was deleted concurrently; the write was discarded.", null);
        }

        return MergeFields(current, mutation, writer, revision, rules);
    }

    /// <summary>Applies the values chosen for a conflict: written as given, whatever the collection's policy.</summary>
    /// <param name="current">The document's state.</param>
    /// <param name="fields">The chosen values.</param>
    /// <param name="remove">Fields the resolution removes.</param>
    /// <param name="hlc">The resolution's timestamp.</param>
    /// <param name="writer">The replica (or server) that resolved.</param>
    /// <param name="revision">The revision the document takes.</param>
    /// <returns>The outcome; a document deleted since the conflict stays deleted.</returns>
    public static MergeOutcome ApplyResolution(DocumentState? current, IReadOnlyDictionary<string, JsonElement>? fields, IReadOnlyList<string>? remove, HybridTimestamp hlc, ulong writer, long revision)
    {
        if (current is { Deleted: true })
        {
            return new MergeOutcome(current, false, MutationStatus.Merged, "The document was deleted; the resolution was discarded.", null);
        }

        var state = current ?? DocumentState.Empty;
        var result = new Dictionary<string, FieldState>(state.Fields, StringComparer.Ordinal);
        foreach (var (name, value) in fields ?? EmptyFields)
        {
            var at = result.TryGetValue(name, out var old) && old.Hlc > hlc ? old.Hlc : hlc;
            result[name] = FieldState.Written(value.Clone(), at, revision, writer);
        }

        foreach (var name in remove ?? [])
        {
            var at = result.TryGetValue(name, out var old) && old.Hlc > hlc ? old.Hlc : hlc;
            result[name] = FieldState.RemovedAt(at, revision, writer);
        }

        return Changed(state with { Fields = result, Revision = revision }, MutationStatus.Applied, null);
    }

    private static readonly IReadOnlyDictionary<string, JsonElement> EmptyFields = new Dictionary<string, JsonElement>();

    private static MergeOutcome Changed(DocumentState state, MutationStatus status, string? reason) => new(state, true, status, reason, null);

    private static DocumentState Create(Mutation mutation, ulong writer, long revision)
    {
        var fields = new Dictionary<string, FieldState>(StringComparer.Ordinal);
        foreach (var (name, value) in mutation.Fields ?? EmptyFields)
        {
            fields[name] = FieldState.Written(value.Clone(), mutation.Hlc, revision, writer);
        }

        foreach (var name in mutation.Remove ?? [])
        {
            fields[name] = FieldState.RemovedAt(mutation.Hlc, revision, writer);
        }

        return new DocumentState { Fields = fields, Revision = revision };
    }

    private static MergeOutcome Revive(DocumentState tombstone, Mutation mutation, ulong writer, long revision, CollectionRules rules)
    {
        var merged = MergeFields(tombstone with { Deleted = false }, mutation, writer, revision, rules);
        return merged with { Changed = true, State = merged.State with { Revision = revision } };
    }

    private static MergeOutcome ApplyDelete(DocumentState? current, Mutation mutation, ulong writer, long revision, CollectionRules rules)
    {
        if (current is { Deleted: true })
        {
            // A second delete is recorded too: a revival by the first deleter must still be concurrent with it.
            var hlc = current.DeletedHlc is { } h && h > mutation.Hlc ? h : mutation.Hlc;
            return Changed(current.WithDelete(writer, revision) with { DeletedHlc = hlc, Revision = revision }, MutationStatus.Applied, null);
        }

        if (current is not null && rules.Delete == DeleteRule.UpdateWins && current.LastUpdateByOtherThan(writer) > mutation.BaseRevision)
        {
            return new MergeOutcome(current, false, MutationStatus.Merged, "The document was updated concurrently; the delete was discarded.", null);
        }

        // Under DeleteWins a tombstone keeps no fields: a later revive starts from scratch, and the tombstone is the same
        // whichever concurrent updates arrived before the delete.
        var fields = rules.Delete == DeleteRule.DeleteWins || current is null
            ? new Dictionary<string, FieldState>(StringComparer.Ordinal)
            : current.Fields;
        return Changed(
            (current ?? DocumentState.Empty).WithDelete(writer, revision) with { Fields = fields, Deleted = true, DeletedHlc = mutation.Hlc, Revision = revision },
            MutationStatus.Applied,
            null);
    }

    private static MergeOutcome MergeFields(DocumentState current, Mutation mutation, ulong writer, long revision, CollectionRules rules)
    {
        var result = new Dictionary<string, FieldState>(current.Fields, StringComparer.Ordinal);
        var changed = false;
        var keptServer = false;
        List<(string Name, FieldState Server, FieldState Client)>? contested = null;

        void Write(string name, FieldState incoming)
        {
            current.Fields.TryGetValue(name, out var existing);
            var concurrent = existing is not null && existing.Revision > mutation.BaseRevision && existing.Writer != writer;
            if (!concurrent || incoming.SameValueAs(existing))
            {
                // Not concurrent: the writer saw the server's value, so its write follows it. The same value written on
                // both sides is no conflict either; the later timestamp is kept so every replica agrees on it.
                if (existing is null || !incoming.SameValueAs(existing) || incoming.Hlc > existing.Hlc)
                {
                    result[name] = incoming;
                    changed = true;
                }

                return;
            }

            switch (rules.Policy)
            {
                case ConflictPolicy.LastWriterWins when incoming.Hlc > existing!.Hlc:
                    result[name] = incoming;
                    changed = true;
                    break;
                case ConflictPolicy.ClientWins:
                    result[name] = incoming with { Hlc = Max(incoming.Hlc, existing!.Hlc), WriterOverride = writer == Max(incoming.Hlc, existing.Hlc).Node ? null : writer };
                    changed = true;
                    break;
                case ConflictPolicy.Custom:
                case ConflictPolicy.Manual:
                    (contested ??= []).Add((name, existing!, incoming));
                    break;
                default:
                    keptServer = true;
                    break;
            }
        }

        if (mutation.Kind == MutationKind.Increment)
        {
            foreach (var (name, delta) in mutation.Fields ?? EmptyFields)
            {
                current.Fields.TryGetValue(name, out var existing);
                TryAddNumbers(existing is { Removed: false } ? existing.Value : null, delta, out var sum);
                var at = existing is not null && existing.Hlc > mutation.Hlc ? existing.Hlc : mutation.Hlc;
                result[name] = FieldState.Written(sum, at, revision, writer);
                changed = true;
            }
        }
        else
        {
            foreach (var (name, value) in mutation.Fields ?? EmptyFields)
            {
                Write(name, FieldState.Written(value.Clone(), mutation.Hlc, revision, writer));
            }

            foreach (var name in mutation.Remove ?? [])
            {
                Write(name, FieldState.RemovedAt(mutation.Hlc, revision, writer));
            }
        }

        List<ConflictField>? conflictFields = null;
        if (contested is not null)
        {
            if (rules.Policy == ConflictPolicy.Custom)
            {
                var resolver = rules.Resolver ?? throw new InvalidOperationException("The Custom conflict policy needs a Resolver.");
                var input = new List<FieldConflict>(contested.Count);
                foreach (var (name, server, client) in contested)
                {
                    input.Add(new FieldConflict(name, BaseValue(mutation, name), ValueOf(server), ValueOf(client)));
                }

                var resolved = resolver(new CustomConflict(mutation.Collection, mutation.DocumentId, input));
                foreach (var (name, server, client) in contested)
                {
                    if (resolved.TryGetValue(name, out var value))
                    {
                        var at = Max(server.Hlc, client.Hlc);
                        result[name] = FieldState.Written(value.Clone(), at, revision, writer);
                        changed = true;
                    }
                }

                keptServer = true;
            }
            else
            {
                conflictFields = new List<ConflictField>(contested.Count);
                foreach (var (name, server, client) in contested)
                {
                    conflictFields.Add(new ConflictField { Name = name, Base = BaseValue(mutation, name), Server = server, Client = client });
                }
            }
        }

        var state = changed ? current with { Fields = result, Revision = revision } : current;
        var status = conflictFields is not null ? MutationStatus.Conflict
            : keptServer ? MutationStatus.Merged
            : MutationStatus.Applied;
        var reason = status switch
        {
            MutationStatus.Conflict => "Fields edited concurrently wait for a resolution: " + string.Join(", ", conflictFields!.Select(f => f.Name)) + ".",
            MutationStatus.Merged => $"Fields edited concurrently were decided by the {rules.Policy} policy.",
            _ => null,
        };
        return new MergeOutcome(state, changed, status, reason, conflictFields);
    }

    /// <summary>Names a JSON value's kind as the protocol does, for the reasons a client may show.</summary>
    private static string KindInWords(JsonValueKind kind) => kind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        _ => "no value",
    };

    private static string? CheckIncrement(DocumentState? current, Mutation mutation)
    {
        foreach (var (name, delta) in mutation.Fields ?? EmptyFields)
        {
            if (delta.ValueKind != JsonValueKind.Number)
            {
                return $"Increment of field '{name}' needs a number, not {KindInWords(delta.ValueKind)}.";
            }

            if (current is not null && current.Fields.TryGetValue(name, out var existing) && !existing.Removed && existing.Value.ValueKind != JsonValueKind.Number)
            {
                return $"Field '{name}' holds {KindInWords(existing.Value.ValueKind)}, not a number, and cannot be incremented.";
            }

            var value = current is not null && current.Fields.TryGetValue(name, out existing) && !existing.Removed ? existing.Value : (JsonElement?)null;
            if (!TryAddNumbers(value, delta, out _))
            {
                return $"Increment of field '{name}' would overflow: the sum is out of range.";
            }
        }

        return mutation.Remove is { Count: > 0 } ? "An increment cannot remove fields." : null;
    }

    /// <summary>Adds an increment to a counter's value the way the server does: exactly as 64-bit integers when both are, as decimals up to 10^27, otherwise as doubles.</summary>
    /// <param name="current">The counter's value; a missing or non-number value counts as 0.</param>
    /// <param name="delta">The amount to add, a JSON number.</param>
    /// <param name="sum">The sum, when it is in range.</param>
    /// <returns><see langword="false"/> when the sum overflows a 64-bit integer or leaves the range of a double.</returns>
    public static bool TryAddNumbers(JsonElement? current, JsonElement delta, out JsonElement sum)
    {
        sum = default;
        if (delta.ValueKind != JsonValueKind.Number || !double.IsFinite(delta.GetDouble()))
        {
            return false;
        }

        if (current is not { ValueKind: JsonValueKind.Number } value)
        {
            sum = delta.Clone();
            return true;
        }

        string text;
        if (value.TryGetInt64(out var a) && delta.TryGetInt64(out var b))
        {
            if (b > 0 ? a > long.MaxValue - b : a < long.MinValue - b)
            {
                return false;
            }

            text = (a + b).ToString(CultureInfo.InvariantCulture);
        }
        else if (value.TryGetDecimal(out var x) && delta.TryGetDecimal(out var y) && Math.Abs(x) < 1e27m && Math.Abs(y) < 1e27m)
        {
            // Decimal addition is exact for the values people count with, so the sum does not depend on the order.
            text = (x + y).ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            var d = value.GetDouble() + delta.GetDouble();
            if (!double.IsFinite(d))
            {
                return false;
            }

            text = d.ToString("R", CultureInfo.InvariantCulture);
        }

        using var document = JsonDocument.Parse(text);
        sum = document.RootElement.Clone();
        return true;
    }

    private static JsonElement? ValueOf(FieldState state) => state.Removed ? null : state.Value;

    private static JsonElement? BaseValue(Mutation mutation, string name) =>
        mutation.BaseValues is not null && mutation.BaseValues.TryGetValue(name, out var value) ? value : null;

    private static HybridTimestamp Max(HybridTimestamp a, HybridTimestamp b) => a > b ? a : b;
}
