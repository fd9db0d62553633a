using System.Buffers;
using System.Text.Json;
using Converge.Protocol;
using Converge.Protocol.Messages;

namespace Converge.Client.Sync;

/// <summary>A document's new server state in a page, as the JSON the server sent.</summary>
/// <param name="Collection">The collection.</param>
/// <param name="DocumentId">The document's id.</param>
/// <param name="State">The state's JSON (a <c>DocumentState</c>), read when the page is applied.</param>
internal readonly record struct PageChange(string Collection, string DocumentId, ReadOnlyMemory<byte> State);

/// <summary>A pull response, parsed without building its document states; holds the response body until disposed.</summary>
internal sealed class PulledPage : IDisposable
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = ProtocolLimits.MaxMessageDepth };

    private byte[]? _body;

    private PulledPage(byte[] body) => _body = body;

    public string Scope { get; private set; } = "";

    public long Cursor { get; private set; }

    public bool HasMore { get; private set; }

    public bool Reset { get; private set; }

    public HybridTimestamp Clock { get; private set; }

    /// <summary>Gets the server store's epoch, when the server sends one (see <see cref="PullResponse.Epoch"/>).</summary>
    public string? Epoch { get; private set; }

    public List<PageChange> Changes { get; } = [];

    public List<ConflictRecord>? Conflicts { get; private set; }

    /// <summary>Gets the JSON of each of <see cref="Conflicts"/>, as the server sent it, for the store to keep as it is.</summary>
    public List<ReadOnlyMemory<byte>>? ConflictJson { get; private set; }

    /// <summary>Parses a pull response held in a pooled buffer, which the page returns to the pool when disposed.</summary>
    /// <exception cref="JsonException">The body is not a valid pull response.</exception>
    public static PulledPage Parse(byte[] pooled, int length) => Parse(pooled, 0, length);

    /// <summary>Parses a pull response that is a part of a message held in a pooled buffer (a live message's page), which the page returns to the pool when disposed.</summary>
    /// <exception cref="JsonException">The part is not a valid pull response.</exception>
    public static PulledPage Parse(byte[] pooled, int start, int length)
    {
        var page = new PulledPage(pooled);
        try
        {
            page.Read(pooled.AsMemory(start, length));
            return page;
        }
        catch
        {
            page.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_body is { } body)
        {
            _body = null;
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    private void Read(ReadOnlyMemory<byte> body)
    {
        var json = body.Span;
        var reader = new Utf8JsonReader(json, ReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A pull response must be a JSON object.");
        }

        bool scope = false, cursor = false, clock = false, changes = false;
        Span<char> text = stackalloc char[HybridTimestamp.TextLength];
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("scope"u8))
            {
                Next(ref reader);
                Scope = reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw Invalid("scope");
                scope = true;
            }
            else if (reader.ValueTextEquals("cursor"u8))
            {
                Next(ref reader);
                Cursor = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : throw Invalid("cursor");
                cursor = true;
            }
            else if (reader.ValueTextEquals("hasMore"u8))
            {
                Next(ref reader);
                HasMore = Boolean(ref reader, "hasMore");
            }
            else if (reader.ValueTextEquals("reset"u8))
            {
                Next(ref reader);
                Reset = Boolean(ref reader, "reset");
            }
            else if (reader.ValueTextEquals("clock"u8))
            {
                Next(ref reader);
                Clock = reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped && reader.ValueSpan.Length == HybridTimestamp.TextLength
                    && HybridTimestamp.TryParse(text[..reader.CopyString(text)], out var timestamp)
                    ? timestamp
                    : throw Invalid("clock");
                clock = true;
            }
            else if (reader.ValueTextEquals("epoch"u8))
            {
                Next(ref reader);
                Epoch = reader.TokenType switch
                {
                    JsonTokenType.String => reader.GetString(),
                    JsonTokenType.Null => null,
                    _ => throw Invalid("epoch"),
                };
            }
            else if (reader.ValueTextEquals("changes"u8))
            {
                Next(ref reader);
                ReadChanges(ref reader, body);
                changes = true;
            }
            else if (reader.ValueTextEquals("conflicts"u8))
            {
                Next(ref reader);
                if (reader.TokenType != JsonTokenType.Null)
                {
                    ReadConflicts(ref reader, body);
                }
            }
            else
            {
                Next(ref reader);
                reader.Skip();
            }
        }

        if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
        {
            throw new JsonException("A pull response is not one complete JSON object.");
        }

        if (!scope || !cursor || !clock || !changes)
        {
            throw new JsonException("A pull response lacks 'scope', 'cursor', 'clock' or 'changes'.");
        }
    }

    private void ReadChanges(ref Utf8JsonReader reader, ReadOnlyMemory<byte> body)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Invalid("changes");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            string? collection = null, id = null;
            ReadOnlyMemory<byte> state = default;
            var hasState = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("collection"u8))
                {
                    Next(ref reader);
                    collection = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw Invalid("collection");
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    Next(ref reader);
                    id = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw Invalid("id");
                }
                else if (reader.ValueTextEquals("state"u8))
                {
                    Next(ref reader);
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        throw Invalid("state");
                    }

                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    state = body[start..(int)reader.BytesConsumed];
                    hasState = true;
                }
                else
                {
                    Next(ref reader);
                    reader.Skip();
                }
            }

            if (collection is null || id is null || !hasState)
            {
                throw new JsonException("A change of a pull response lacks 'collection', 'id' or 'state'.");
            }

            Changes.Add(new PageChange(collection, id, state));
        }

        if (reader.TokenType != JsonTokenType.EndArray)
        {
            throw Invalid("changes");
        }
    }

    private void ReadConflicts(ref Utf8JsonReader reader, ReadOnlyMemory<byte> body)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Invalid("conflicts");
        }

        Conflicts = [];
        ConflictJson = [];
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var start = (int)reader.TokenStartIndex;
            var record = JsonSerializer.Deserialize(ref reader, ProtocolJson.ConflictRecord);
            Conflicts.Add(record!);
            ConflictJson.Add(body[start..(int)reader.BytesConsumed]);
        }
    }

    private static bool Boolean(ref Utf8JsonReader reader, string member) => reader.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw Invalid(member),
    };

    private static void Next(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
        {
            throw new JsonException("A pull response ends too early.");
        }
    }

    private static JsonException Invalid(string member) => new($"A pull response has an invalid '{member}'.");
}
