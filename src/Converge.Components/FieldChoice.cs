namespace Converge.Components;

/// <summary>What a person chose for one conflicting field in <see cref="ConflictResolver"/>.</summary>
public enum FieldChoice
{
    /// <summary>Keep this device's side: the value of the write that met the conflict.</summary>
    Mine,

    /// <summary>Keep the server's side, which the document holds while the conflict is open.</summary>
    Theirs,

    /// <summary>Keep a value the person typed.</summary>
    Edit,
}
