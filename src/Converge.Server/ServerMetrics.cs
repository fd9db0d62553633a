using System.Diagnostics.Metrics;
using Converge.Protocol.Messages;

namespace Converge.Server;

/// <summary>The server's instruments, on the meter named <see cref="MeterName"/>.</summary>
internal sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "Converge.Server";

    private static readonly KeyValuePair<string, object?>[] s_statusTags =
    [
        new("status", "applied"),
        new("status", "merged"),
        new("status", "conflict"),
        new("status", "rejected"),
        new("status", "duplicate"),
    ];

    private readonly Meter _meter;

    public ServerMetrics(IMeterFactory? meterFactory)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Pushes = _meter.CreateCounter<long>("converge.server.pushes", "{push}", "Push requests applied.");
        Mutations = _meter.CreateCounter<long>("converge.server.mutations", "{mutation}", "Mutations pushed, by status: applied, merged, conflict, rejected, duplicate.");
        Pulls = _meter.CreateCounter<long>("converge.server.pulls", "{pull}", "Pull requests answered.");
        DocumentsPulled = _meter.CreateCounter<long>("converge.server.documents_pulled", "{document}", "Documents sent in pull pages.");
        ConflictsResolved = _meter.CreateCounter<long>("converge.server.conflicts_resolved", "{conflict}", "Conflicts resolved, through the endpoint or a resolve mutation.");
        TombstonesRemoved = _meter.CreateCounter<long>("converge.server.tombstones_removed", "{document}", "Tombstones removed by compaction.");
        LiveConnections = _meter.CreateUpDownCounter<long>("converge.server.live_connections", "{connection}", "Open live connections.");
        LiveMessages = _meter.CreateCounter<long>("converge.server.live_messages", "{message}", "Live change messages queued to connections.");
        LivePokes = _meter.CreateCounter<long>("converge.server.live_pokes", "{poke}", "Times a slow live client's changes were dropped for a poke.");
        Limited = _meter.CreateCounter<long>("converge.server.limited_requests", "{request}", "Requests refused or ended by a limit, by limit: bytes_in_flight, requests, live_connections, body_timeout.");
    }

    public Counter<long> Pushes { get; }

    public Counter<long> Mutations { get; }

    public Counter<long> Pulls { get; }

    public Counter<long> DocumentsPulled { get; }

    public Counter<long> ConflictsResolved { get; }

    public Counter<long> TombstonesRemoved { get; }

    public UpDownCounter<long> LiveConnections { get; }

    public Counter<long> LiveMessages { get; }

    public Counter<long> LivePokes { get; }

    public Counter<long> Limited { get; }

    /// <summary>Reports the live connections' waiting bytes, summed, as the gauge <c>converge.server.live_queued_bytes</c>.</summary>
    public void ObserveLiveQueue(Func<long> queuedBytes) =>
        _meter.CreateObservableGauge("converge.server.live_queued_bytes", queuedBytes, "By", "Bytes of live messages waiting to be sent, over all connections.");

    /// <summary>Reports the bytes of request bodies and live messages being read, as the gauge <c>converge.server.request_bytes_in_flight</c>.</summary>
    public void ObserveRequestBytesInFlight(Func<long> bytes) =>
        _meter.CreateObservableGauge("converge.server.request_bytes_in_flight", bytes, "By", "Bytes of request bodies and live messages being read and buffered, over all connections.");

    /// <summary>Counts a request refused or ended by a limit.</summary>
    public void RecordLimited(string limit) => Limited.Add(1, new KeyValuePair<string, object?>("limit", limit));

    /// <summary>Counts a push's results, one measurement per status present.</summary>
    public void RecordMutations(ReadOnlySpan<int> countsByStatus)
    {
        for (var i = 0; i < countsByStatus.Length; i++)
        {
            if (countsByStatus[i] > 0)
            {
                Mutations.Add(countsByStatus[i], s_statusTags[i]);
            }
        }
    }

    /// <summary>The number of <see cref="MutationStatus"/> values, the length of a per-status count.</summary>
    public const int StatusCount = 5;

    public void Dispose() => _meter.Dispose();
}
