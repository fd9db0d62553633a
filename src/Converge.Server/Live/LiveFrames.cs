using System.Buffers;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;
using Converge.Server.Engine;

namespace Converge.Server.Live;

/// <summary>Writes the server's live messages (<see cref="LiveProtocol"/>) as UTF-8 JSON, each once, to be shared by every connection it goes to.</summary>
internal static class LiveFrames
{
    public static byte[] Ready(HybridTimestamp clock, IReadOnlyList<string> scopes) => Write(writer =>
    {
        writer.WriteString("type"u8, LiveProtocol.Ready);
        writer.WriteString("clock"u8, clock.ToString());
        writer.WriteStartArray("scopes"u8);
        foreach (var scope in scopes)
        {
            writer.WriteStringValue(scope);
        }

        writer.WriteEndArray();
    });

    public static byte[] Changes(long after, PullPage page) => Write(writer =>
    {
        writer.WriteString("type"u8, LiveProtocol.Changes);
        writer.WriteNumber("after"u8, after);
        writer.WritePropertyName("page"u8);
        page.Write(writer);
    });

    public static byte[] Poke(string scope) => Write(writer =>
    {
        writer.WriteString("type"u8, LiveProtocol.Poke);
        writer.WriteString("scope"u8, scope);
    });

    public static byte[] Pushed(long request, PushResponse response) => Write(writer =>
    {
        writer.WriteString("type"u8, LiveProtocol.Pushed);
        writer.WriteNumber("request"u8, request);
        writer.WritePropertyName("response"u8);
        JsonSerializer.Serialize(writer, response, ProtocolJson.PushResponse);
    });

    public static byte[] Error(long? request, int status, string code, string detail, string? scope = null) => Write(writer =>
    {
        writer.WriteString("type"u8, LiveProtocol.Error);
        if (request is { } id)
        {
            writer.WriteNumber("request"u8, id);
        }

        writer.WriteNumber("status"u8, status);
        writer.WriteString("code"u8, code);
        writer.WriteString("detail"u8, detail);
        if (scope is not null)
        {
            writer.WriteString("scope"u8, scope);
        }
    });

    private static byte[] Write(Action<Utf8JsonWriter> members)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            members(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
