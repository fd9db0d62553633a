using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Converge.Work;

/// <summary>The live streams of work infos: each waits for a notice that what it watches may have changed, then queries again.</summary>
internal sealed class Watchers
{
    private readonly ConcurrentDictionary<Subscription, byte> _subscriptions = new();

    /// <summary>Streams a query's answer: at once, then after each change that is visible in it.</summary>
    /// <param name="query">The query.</param>
    /// <param name="id">The one work the query is about, if it is; notices about other work items are then ignored.</param>
    /// <param name="read">Answers the query.</param>
    /// <param name="cancellationToken">Ends the stream.</param>
    /// <returns>The answers.</returns>
    public async IAsyncEnumerable<IReadOnlyList<WorkInfo>> WatchAsync(
        WorkQuery query,
        Guid? id,
        Func<WorkQuery, CancellationToken, Task<IReadOnlyList<WorkInfo>>> read,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var subscription = new Subscription(id);
        _subscriptions.TryAdd(subscription, 0);
        try
        {
            string? last = null;
            while (true)
            {
                var infos = await read(query, cancellationToken).ConfigureAwait(false);
                var fingerprint = Fingerprint(infos);
                if (!string.Equals(fingerprint, last, StringComparison.Ordinal))
                {
                    last = fingerprint;
                    yield return infos;
                }

                await subscription.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _subscriptions.TryRemove(subscription, out _);
        }
    }

    /// <summary>Tells every stream to look again: another process or node committed.</summary>
    public void NotifyAll()
    {
        foreach (var subscription in _subscriptions.Keys)
        {
            subscription.Notify();
        }
    }

    /// <summary>Tells the streams that watch these work items, or any work, to look again.</summary>
    /// <param name="changed">The work items that changed.</param>
    public void Notify(IReadOnlySet<Guid> changed)
    {
        foreach (var subscription in _subscriptions.Keys)
        {
            if (subscription.Id is not { } id || changed.Contains(id))
            {
                subscription.Notify();
            }
        }
    }

    private static string Fingerprint(IReadOnlyList<WorkInfo> infos) => string.Join(
        ';',
        infos.Select(i => $"{i.Id}|{i.State}|{i.RunAttemptCount}|{i.Generation}|{i.PeriodCount}|{i.NextScheduleTime?.ToUnixTimeMilliseconds()}|{i.StopReason}|{i.OutputData.ToJson()}|{i.Progress.ToJson()}"));

    private sealed class Subscription(Guid? id)
    {
        private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

        public Guid? Id { get; } = id;

        public void Notify() => _signal.Writer.TryWrite(true);

        public async Task WaitAsync(CancellationToken cancellationToken) => await _signal.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
    }
}
