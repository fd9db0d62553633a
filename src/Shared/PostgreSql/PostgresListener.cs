using Npgsql;

namespace Converge.PostgreSql;

/// <summary>
/// One connection that <c>LISTEN</c>s on a channel for as long as it is asked to, made again with backoff when it breaks,
/// and checked when it has been silent a while (a dead peer is otherwise only noticed by the next send).
/// </summary>
/// <remarks>
/// Compiled into the server's and Converge.Work's PostgreSQL stores (a linked file): both learn of other nodes' commits
/// this way, and both must assume they missed some after a gap, which <c>listening(afterLoss: true)</c> tells them.
/// </remarks>
internal static class PostgresListener
{
    private static readonly TimeSpan Check = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan RetryFirst = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan RetryMax = TimeSpan.FromSeconds(10);

    /// <summary>Listens until <paramref name="cancellationToken"/> is cancelled; never throws for a failure of the server or the connection.</summary>
    /// <param name="dataSource">Where the connection comes from.</param>
    /// <param name="channel">The channel: a plain identifier.</param>
    /// <param name="onPayload">Called, on the connection's thread, with each notification's payload.</param>
    /// <param name="listening">Called each time the connection listens; <see langword="true"/> when it listens again after a failure.</param>
    /// <param name="failed">Called with each failure and the delay before the next attempt.</param>
    /// <param name="cancellationToken">Ends listening.</param>
    /// <returns>A task that completes when listening has ended.</returns>
    public static async Task RunAsync(
        NpgsqlDataSource dataSource,
        string channel,
        Action<string> onPayload,
        Action<bool> listening,
        Action<Exception, TimeSpan> failed,
        CancellationToken cancellationToken)
    {
        var lost = false;
        var delay = RetryFirst;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await using (connection.ConfigureAwait(false))
                {
                    connection.Notification += (_, e) => onPayload(e.Payload);
                    using (var listen = new NpgsqlCommand("LISTEN " + channel, connection))
                    {
                        await listen.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }

                    listening(lost);
                    delay = RetryFirst;
                    while (true)
                    {
                        if (!await connection.WaitAsync(Check, cancellationToken).ConfigureAwait(false))
                        {
                            // Silent a while: make sure the connection is still there, or learn it is not.
                            using var check = new NpgsqlCommand("SELECT 1", connection);
                            await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Whatever it was, listening goes on: a node that stopped hearing the others would miss their commits.
                lost = true;
                failed(e, delay);
                try
                {
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, RetryMax.Ticks));
            }
        }
    }

    /// <summary>A data source builder with what every Converge store wants: auto-prepared statements unless the connection string says otherwise, and an application name.</summary>
    /// <param name="connectionString">The connection string.</param>
    /// <param name="applicationName">The application name PostgreSQL shows, unless the connection string gives one.</param>
    /// <param name="maxAutoPrepare">How many statements to keep prepared.</param>
    /// <returns>The builder.</returns>
    public static NpgsqlDataSourceBuilder Builder(string connectionString, string applicationName, int maxAutoPrepare)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            // A store runs the same few statements all day: prepared, they skip parsing and planning.
            builder.ConnectionStringBuilder.MaxAutoPrepare = maxAutoPrepare;
        }

        if (string.IsNullOrEmpty(builder.ConnectionStringBuilder.ApplicationName))
        {
            builder.ConnectionStringBuilder.ApplicationName = applicationName;
        }

        return builder;
    }
}
