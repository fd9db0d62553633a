using System.Text.Json.Serialization;

namespace TodoApp;

/// <summary>A todo: the "todos" collection, LastWriterWins on the server.</summary>
internal sealed record Todo
{
    [JsonPropertyName("title")]
    public string Title { get; init; } = "";

    [JsonPropertyName("done")]
    public bool Done { get; init; }
}

/// <summary>A note: the "notes" collection, Manual on the server, so a same-field edit on two devices waits for a person.</summary>
internal sealed record Note
{
    [JsonPropertyName("title")]
    public string Title { get; init; } = "";

    [JsonPropertyName("text")]
    public string Text { get; init; } = "";

    [JsonPropertyName("color")]
    public string Color { get; init; } = "";

    [JsonPropertyName("pinned")]
    public bool Pinned { get; init; }
}

/// <summary>A device's name, kept in the "devices" collection under its client id so the resolver can say which device wrote a value.</summary>
internal sealed record DeviceEntry
{
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";
}
