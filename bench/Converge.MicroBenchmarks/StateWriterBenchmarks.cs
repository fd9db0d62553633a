using System.Buffers;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Converge.Protocol.Documents;
using Converge.Protocol.Messages;

namespace Converge.MicroBenchmarks;

/// <summary>
/// The server's writer of a stored document's state (<c>DocumentStateJson</c>, once per document of every push, in every server store) against
/// System.Text.Json's source-generated serializer writing the same state, byte for byte the same JSON.
/// </summary>
/// <remarks>Both write into one reused buffer and writer, as the store does, so only the writing is measured.</remarks>
[MemoryDiagnoser]
public class StateWriterBenchmarks
{
    private readonly DocumentState _state = Documents.Stored();
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private Utf8JsonWriter _writer = null!;

    /// <summary>Opens the writer, and checks that both ways write the same bytes.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _writer = new Utf8JsonWriter(_buffer);
        var own = StateWriter().ToArray();
        var serialized = Serializer().ToArray();
        if (!own.SequenceEqual(serialized))
        {
            throw new InvalidOperationException("DocumentStateJson and the serializer wrote different JSON.");
        }
    }

    /// <summary>Disposes the writer.</summary>
    [GlobalCleanup]
    public void Cleanup() => _writer.Dispose();

    /// <summary>System.Text.Json with the protocol's source-generated metadata.</summary>
    [Benchmark(Baseline = true)]
    public ReadOnlyMemory<byte> Serializer()
    {
        Reset();
        JsonSerializer.Serialize(_writer, _state, ProtocolJson.DocumentState);
        _writer.Flush();
        return _buffer.WrittenMemory;
    }

    /// <summary>The server's hand-written writer.</summary>
    [Benchmark]
    public ReadOnlyMemory<byte> StateWriter()
    {
        Reset();
        DocumentStateJson.Write(_writer, _state);
        _writer.Flush();
        return _buffer.WrittenMemory;
    }

    private void Reset()
    {
        _buffer.ResetWrittenCount();
        _writer.Reset();
    }
}
