using System.Text.Json.Serialization;

namespace Converge.Protocol.Messages;

/// <summary>What a live frame carries.</summary>
[JsonConverter(typeof(Json.StrictEnumConverter<LiveFrameType>))]
public enum LiveFrameType
{
    /// <summary>Client → server, first frame: the client's id and its cursor per scope.</summary>
    [JsonStringEnumMemberName("hello")]
    Hello,

    /// <summary>Server → client, answer to hello: the server's clock and the heartbeat interval.</summary>
    [JsonStringEnumMemberName("welcome")]
    Welcome,

    /// <summary>Client → server: a push over the socket (<see cref="LiveFrame.Push"/>).</summary>
    [JsonStringEnumMemberName("push")]
    Push,

    /// <summary>Server → client: the response to a push, with the push's <see cref="LiveFrame.Ref"/>.</summary>
    [JsonStringEnumMemberName("pushed")]
    Pushed,

    /// <summary>Server → client: a page of a scope's changes, from the resync or as they commit (<see cref="LiveFrame.Page"/>).</summary>
    [JsonStringEnumMemberName("page")]
    Page,

    /// <summary>Server → client: a scope changed but the client is behind; it pulls the scope itself over HTTP.</summary>
    [JsonStringEnumMemberName("poke")]
    Poke,

    /// <summary>Either way: a heartbeat; the other side answers with <see cref="Pong"/>.</summary>
    [JsonStringEnumMemberName("ping")]
    Ping,

    /// <summary>Either way: the answer to a <see cref="Ping"/>.</summary>
    [JsonStringEnumMemberName("pong")]
    Pong,

    /// <summary>Server → client: a refused frame (with its <see cref="LiveFrame.Ref"/>) or the reason the server closes the socket.</summary>
    [JsonStringEnumMemberName("error")]
    Error,
}

/// <summary>One frame of the live WebSocket channel (<c>/converge/v1/live</c>): a JSON text message.</summary>
/// <remarks>Only the members of the frame's <see cref="Type"/> are present; docs/protocol.md lists them per type.</remarks>
public sealed record LiveFrame
{
    /// <summary>Gets what the frame carries.</summary>
    [JsonPropertyName("type")]
    public required LiveFrameType Type { get; init; }

    /// <summary>Gets the number the client gave a push or ping, echoed in the answer.</summary>
    [JsonPropertyName("ref")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long Ref { get; init; }

    /// <summary>Gets the client's replica id (hello).</summary>
    [JsonPropertyName("client")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ClientId { get; init; }

    /// <summary>Gets the client's cursor per scope it wants live (hello).</summary>
    [JsonPropertyName("cursors")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, long>? Cursors { get; init; }

    /// <summary>Gets the store epoch the client's cursors belong to (hello), as the last pull gave it.</summary>
    [JsonPropertyName("epoch")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Epoch { get; init; }

    /// <summary>Gets the server's clock (welcome, pushed, page).</summary>
    [JsonPropertyName("clock")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public HybridTimestamp? Clock { get; init; }

    /// <summary>Gets the interval at which the server pings, in milliseconds (welcome); the client deems the server gone after missing two.</summary>
    [JsonPropertyName("heartbeatMs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long HeartbeatMs { get; init; }

    /// <summary>Gets the push (push).</summary>
    [JsonPropertyName("push")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PushRequest? Push { get; init; }

    /// <summary>Gets the push's response (pushed).</summary>
    [JsonPropertyName("pushed")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PushResponse? Pushed { get; init; }

    /// <summary>Gets a page of changes, exactly as a pull returns it (page).</summary>
    [JsonPropertyName("page")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PullResponse? Page { get; init; }

    /// <summary>Gets the scope to pull (poke).</summary>
    [JsonPropertyName("scope")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Scope { get; init; }

    /// <summary>Gets the error code, one of <see cref="ProtocolErrorCodes"/> (error).</summary>
    [JsonPropertyName("code")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Code { get; init; }

    /// <summary>Gets the error's message for people (error).</summary>
    [JsonPropertyName("message")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Message { get; init; }
}
