using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client;
using Converge.Protocol.Messages;

namespace Converge.Components;

/// <summary>The choices a person made so far for one conflict, and the resolution they make.</summary>
internal sealed class ConflictDraft
{
    private readonly Dictionary<string, FieldChoice> _choices = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _edits = new(StringComparer.Ordinal);

    public ConflictDraft(InboxConflict conflict)
    {
        Conflict = conflict;
        foreach (var field in conflict.Fields)
        {
            // The document holds the server's values while the conflict is open, so that is where a person starts.
            _choices[field.Name] = FieldChoice.Theirs;
            _edits[field.Name] = EditText(field);
        }
    }

    public InboxConflict Conflict { get; }

    public FieldChoice Choice(string field) => _choices[field];

    public void Choose(string field, FieldChoice choice) => _choices[field] = choice;

    public string Edit(string field) => _edits[field];

    public void SetEdit(string field, string text) => _edits[field] = text;

    /// <summary>Whether the field's values are strings, so its edited value is plain text rather than JSON.</summary>
    public static bool IsText(ConflictField field)
    {
        var sides = new[] { field.Client, field.Server }.Where(s => !s.Removed).ToList();
        return sides.Count > 0 && sides.All(s => s.Value.ValueKind == JsonValueKind.String);
    }

    /// <summary>Builds the resolution: one side for every field, or the edited values of a mix.</summary>
    /// <param name="choice">Set when every field keeps the same side.</param>
    /// <param name="edited">Set for a mix or an edit: the value of each field that does not keep the server's.</param>
    /// <param name="error">Why the choices cannot be resolved, such as an edited value that is not valid JSON.</param>
    /// <returns>Whether a resolution was built.</returns>
    public bool TryBuild(out ConflictChoice? choice, out JsonObject? edited, out string? error)
    {
        choice = null;
        edited = null;
        error = null;
        var fields = Conflict.Fields;
        if (fields.All(f => _choices[f.Name] == FieldChoice.Mine))
        {
            choice = ConflictChoice.Mine;
            return true;
        }

        if (fields.All(f => _choices[f.Name] == FieldChoice.Theirs))
        {
            choice = ConflictChoice.Theirs;
            return true;
        }

        var values = new JsonObject();
        foreach (var field in fields)
        {
            switch (_choices[field.Name])
            {
                case FieldChoice.Theirs:
                    // A field left out keeps the server's value.
                    break;
                case FieldChoice.Mine when field.Client.Removed:
                    error = $"This device removed {field.Name}; keep mine for every field to remove it, or edit a value.";
                    return false;
                case FieldChoice.Mine:
                    values[field.Name] = JsonNode.Parse(field.Client.Value.GetRawText());
                    break;
                default:
                    if (!TryParse(field, _edits[field.Name], out var node, out error))
                    {
                        return false;
                    }

                    values[field.Name] = node;
                    break;
            }
        }

        edited = values;
        return true;
    }

    /// <summary>Reads an edited value: plain text for a text field, JSON otherwise.</summary>
    public static bool TryParse(ConflictField field, string text, out JsonNode? value, out string? error)
    {
        error = null;
        if (IsText(field))
        {
            value = JsonValue.Create(text);
            return true;
        }

        try
        {
            value = JsonNode.Parse(text);
            return true;
        }
        catch (JsonException e)
        {
            value = null;
            error = string.Create(CultureInfo.InvariantCulture, $"The edited value of {field.Name} is not valid JSON: {e.Message}");
            return false;
        }
    }

    private static string EditText(ConflictField field)
    {
        var side = field.Client.Removed ? field.Server : field.Client;
        if (side.Removed)
        {
            return "";
        }

        return side.Value.ValueKind == JsonValueKind.String && IsText(field) ? side.Value.GetString()! : side.Value.GetRawText();
    }
}
