using System.Buffers;
using Converge.Protocol.Messages;
using Microsoft.Data.Sqlite;

namespace Converge.Server.Storage;

/// <summary>A store that can read a page of changes with each document's state as stored JSON, so a pull sends it as it is.</summary>
internal interface IRawChangeReader
{
    /// <summary>Reads, from one snapshot, the changes of a scope after a revision, as <see cref="ISyncStore.ReadChangesAsync"/> does.</summary>
    RawChangePage ReadRawChanges(string scope, long after, int limit, CancellationToken cancellationToken);
}

/// <summary>One document of a <see cref="RawChangePage"/>: its keys, and where its state's JSON sits in the page's buffer.</summary>
internal readonly record struct RawDocument(long Revision, string Collection, string Id, int Offset, int Length);

/// <summary>A page of changes whose document states are the stored JSON, in one pooled buffer returned when the page is disposed.</summary>
internal sealed class RawChangePage : IDisposable
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    private int _length;

    public List<RawDocument> Documents { get; } = [];

    public IReadOnlyList<ConflictRecord> Conflicts { get; set; } = [];

    public bool HasMore { get; set; }

    public long ScopeRevision { get; set; }

    public long MinValidCursor { get; set; }

    public ReadOnlySpan<byte> State(RawDocument document) => _buffer.AsSpan(document.Offset, document.Length);

    /// <summary>Adds a document, copying its state from a reader's blob column.</summary>
    public void Add(long revision, string collection, string id, SqliteDataReader reader, int ordinal)
    {
        var length = checked((int)reader.GetBytes(ordinal, 0, null, 0, 0));
        if (_length + length > _buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + length));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        reader.GetBytes(ordinal, 0, _buffer, _length, length);
        Documents.Add(new RawDocument(revision, collection, id, _length, length));
        _length += length;
    }

    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
