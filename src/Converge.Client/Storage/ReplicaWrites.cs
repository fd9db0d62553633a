using Converge.Protocol;

namespace Converge.Client.Storage;

/// <summary>
/// The writes of a transaction to what the replica keeps of itself: its cursor in each scope, its clock and its id.
/// The clock is kept in memory and written once, when the transaction commits.
/// </summary>
internal sealed class ReplicaWrites(ClientStore store, StoreStatements sql)
{
    private HybridTimestamp? _clock;

    /// <summary>Moves a scope's cursor forward (never back, so pages from two sources may interleave), or anywhere on a reset; stores the server's epoch with it when given.</summary>
    public void SetCursor(string scope, long cursor, bool reset, string? epoch = null) =>
        sql.SetCursor.Text(0, scope).Int(1, cursor).Int(2, reset ? 1 : 0).Text(3, epoch).Execute();

    /// <summary>Persists the clock's last reading when the transaction commits, so the clock never goes back across restarts.</summary>
    public void SaveClock(HybridTimestamp last)
    {
        if (_clock is not { } kept || last > kept)
        {
            _clock = last;
        }
    }

    /// <summary>Stores this client's new replica id.</summary>
    public void SetReplicaId(ulong replicaId)
    {
        using var command = store.CreateCommand();
        command.CommandText = "UPDATE meta SET value = $v WHERE key = 'replica_id';";
        command.Parameters.AddWithValue("$v", ReplicaId.Format(replicaId));
        command.ExecuteNonQuery();
        store.ReplicaId = replicaId;
    }

    /// <summary>Writes the clock kept in memory; called once, just before the commit.</summary>
    public void Flush()
    {
        if (_clock is { } clock)
        {
            Span<byte> text = stackalloc byte[HybridTimestamp.TextLength];
            Span<char> chars = stackalloc char[HybridTimestamp.TextLength];
            clock.TryFormat(chars, out _);
            System.Text.Encoding.ASCII.GetBytes(chars, text);
            sql.SaveClock.Text(0, text).Execute();
        }
    }
}
