namespace Converge.Protocol.Messages;

/// <summary>The names of the live WebSocket channel: its path, its message types and their members (docs/protocol.md, "Live").</summary>
/// <remarks>
/// Every message is one UTF-8 JSON text message (an object with a <see cref="Type"/> member). The payloads are the HTTP
/// API's own messages, carried whole: a push is a <see cref="PushRequest"/>, its answer a <see cref="PushResponse"/>, and
/// a change notice a <see cref="PullResponse"/> with the cursor the changes follow.
/// </remarks>
public static class LiveProtocol
{
    /// <summary>The path of the channel under the API's base path: <c>{base}/v1/live</c>.</summary>
    public const string Path = "v1/live";

    /// <summary>The query parameter naming a scope to follow; repeated for several.</summary>
    public const string ScopeParameter = "scope";

    /// <summary>The member naming a message's type.</summary>
    public const string Type = "type";

    /// <summary>Server to client, first message: the channel is open and every commit from now on is sent.</summary>
    /// <remarks>Members: <c>clock</c> (the server's HLC), <c>scopes</c> (what is followed).</remarks>
    public const string Ready = "ready";

    /// <summary>Server to client: a commit's changes of one scope.</summary>
    /// <remarks>
    /// Members: <c>after</c> (the scope's cursor before the commit) and <c>page</c> (a <see cref="PullResponse"/> holding
    /// exactly the changes after it). A client whose cursor equals <c>after</c> applies the page and takes its cursor; one
    /// whose cursor is at or past the page's cursor already has it; any other client missed something and pulls.
    /// </remarks>
    public const string Changes = "changes";

    /// <summary>Server to client: something of a scope changed that is not sent here (the client's queue was full, or the commit too large); pull it.</summary>
    /// <remarks>Members: <c>scope</c>.</remarks>
    public const string Poke = "poke";

    /// <summary>Client to server: a push. Members: <c>request</c> (a number the answer repeats) and <c>push</c> (a <see cref="PushRequest"/>).</summary>
    public const string Push = "push";

    /// <summary>Server to client: the answer to a push. Members: <c>request</c> and <c>response</c> (a <see cref="PushResponse"/>).</summary>
    public const string Pushed = "pushed";

    /// <summary>Server to client: a request was refused, or the channel is about to close.</summary>
    /// <remarks>
    /// Members: <c>request</c> (absent when the error is not an answer), <c>status</c> (the HTTP status the same error has
    /// on the HTTP API), <c>code</c> (one of <see cref="ProtocolErrorCodes"/>), <c>detail</c>, and <c>scope</c> for
    /// <see cref="ProtocolErrorCodes.ScopeForbidden"/>.
    /// </remarks>
    public const string Error = "error";
}
