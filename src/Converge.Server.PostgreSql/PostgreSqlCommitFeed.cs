using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Converge.Server.Storage;
using Converge.PostgreSql;

namespace Converge.Server.PostgreSql;

/// <summary>The commit feed of nodes sharing one database: <c>NOTIFY</c> inside each push's transaction, <c>LISTEN</c> on a connection of each node.</summary>
public sealed partial class PostgreSqlSyncStore
{
    /// <summary>The channel commits are announced on.</summary>
    internal const string CommitChannel = "converge_commits";



    /// <inheritdoc/>
    /// <remarks>The notice is a <c>pg_notify</c> in the transaction's last batch: PostgreSQL delivers it at commit, in commit order, and drops it on a rollback. It carries the node, the cursors and the scope, well within <c>NOTIFY</c>'s 8,000 bytes.</remarks>
    public ValueTask AnnounceAsync(ISyncTransaction transaction, CommitNotice notice, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (transaction is not PostgreSqlSyncTransaction ours)
        {
            throw new ArgumentException("The transaction is not one of this store's.", nameof(transaction));
        }

        ours.Notify(string.Create(CultureInfo.InvariantCulture, $"{notice.Node}|{notice.After}|{notice.Cursor}|{notice.Scope}"));
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// One connection of the data source listens for as long as the enumeration runs. When it breaks, it is made again
    /// with backoff, and a <see cref="CommitNotice.Lost"/> notice follows, since commits may have been announced meanwhile.
    /// </remarks>
    public async IAsyncEnumerable<CommitNotice> ListenAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var notices = Channel.CreateUnbounded<CommitNotice>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pump = Task.Run(() => PumpAsync(notices.Writer, stop.Token), CancellationToken.None);
        try
        {
            await foreach (var notice in notices.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return notice;
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await pump.ConfigureAwait(false);
        }
    }

    private async Task PumpAsync(ChannelWriter<CommitNotice> notices, CancellationToken cancellationToken)
    {
        await PostgresListener.RunAsync(
            _dataSource,
            CommitChannel,
            payload =>
            {
                if (TryParse(payload, out var notice))
                {
                    notices.TryWrite(notice);
                }
            },
            afterLoss =>
            {
                if (afterLoss)
                {
                    // Listening again: what was committed while it was not is unknown.
                    notices.TryWrite(CommitNotice.Lost);
                }

                Log.Listening(_logger, _database);
            },
            (e, delay) => Log.ListenFailed(_logger, e, _database, delay),
            cancellationToken).ConfigureAwait(false);
        notices.TryComplete();
    }

    private static bool TryParse(string payload, out CommitNotice notice)
    {
        notice = default;
        var parts = payload.Split('|', 4);
        if (parts.Length != 4
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var after)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var cursor))
        {
            return false;
        }

        notice = new CommitNotice { Node = parts[0], Scope = parts[3], After = after, Cursor = cursor };
        return true;
    }
}
