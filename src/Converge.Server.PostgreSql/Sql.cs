using Npgsql;
using NpgsqlTypes;

namespace Converge.Server.PostgreSql;

/// <summary>The store's statements, and helpers to bind positional parameters without boxing.</summary>
internal static class Sql
{
    /// <summary>Makes the client's progress row exist, so the lock below has a row to take even for a client's first push; waits while another transaction is making it.</summary>
    public const string EnsureClient = "INSERT INTO converge.clients (principal, client) VALUES ($1, $2) ON CONFLICT DO NOTHING";

    public const string LockClient = "SELECT last_mutation, last_hlc, recent FROM converge.clients WHERE principal = $1 AND client = $2 FOR UPDATE";

    /// <summary>The record with the highest mutation id among a client's records under former keys; nothing is created or locked (such records are never written again).</summary>
    public const string ReadFormerClient = """
        SELECT last_mutation, last_hlc, recent FROM converge.clients
        WHERE principal = ANY($1) AND client = $2 AND last_hlc IS NOT NULL
        ORDER BY last_mutation DESC LIMIT 1
        """;

    public const string WriteClient = """
        INSERT INTO converge.clients (principal, client, last_mutation, last_hlc, recent, last_used) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (principal, client) DO UPDATE SET last_mutation = excluded.last_mutation, last_hlc = excluded.last_hlc, recent = excluded.recent, last_used = excluded.last_used
        """;

    /// <summary>Removes a batch of client progress records unused since a time.</summary>
    public const string CompactClients = """
        DELETE FROM converge.clients WHERE ctid IN (
            SELECT ctid FROM converge.clients WHERE last_used < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
        """;

    /// <summary>Makes the scope's counter row exist, so the lock below has a row to take even for a new scope.</summary>
    public const string EnsureScope = "INSERT INTO converge.scopes (scope) VALUES ($1) ON CONFLICT DO NOTHING";

    public const string LockScope = "SELECT revision, min_valid FROM converge.scopes WHERE scope = $1 FOR UPDATE";

    public const string WriteScope = "INSERT INTO converge.scopes (scope, revision) VALUES ($1, $2) ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision";

    public const string ReadDocuments = """
        SELECT d.scope, d.collection, d.id, d.state
        FROM unnest($1::text[], $2::text[], $3::text[]) AS k (scope, collection, id)
        JOIN converge.documents d ON d.scope = k.scope AND d.collection = k.collection AND d.id = k.id
        """;

    /// <summary>Inserts many new documents in one statement: one array per column.</summary>
    public const string InsertDocuments = """
        INSERT INTO converge.documents (scope, collection, id, rev, deleted, deleted_at, state)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::timestamptz[], $7::bytea[])
        """;

    /// <summary>Inserts or replaces many documents in one statement: one array per column.</summary>
    public const string WriteDocuments = """
        INSERT INTO converge.documents (scope, collection, id, rev, deleted, deleted_at, state)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::timestamptz[], $7::bytea[])
        ON CONFLICT (scope, collection, id) DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, deleted_at = excluded.deleted_at, state = excluded.state
        """;

    public const string ReadConflict = "SELECT record FROM converge.conflicts WHERE id = $1";

    public const string ReadOwnOpenConflicts = "SELECT record FROM converge.conflicts WHERE scope = $1 AND collection = $2 AND doc = $3 AND status = 0 AND owner = $4 AND client = $5";

    public const string CountDocumentConflicts = "SELECT count(*) FROM converge.conflicts WHERE scope = $1 AND collection = $2 AND doc = $3 AND status = 0";

    public const string CountOpenConflicts = "SELECT count(*) FROM converge.conflicts WHERE scope = $1 AND status = 0";

    /// <summary>Locks the counter of a conflict's scope, so the record read next is the one every writer of the scope agrees on.</summary>
    public const string LockConflictScope = "SELECT scope FROM converge.scopes WHERE scope = (SELECT scope FROM converge.conflicts WHERE id = $1) FOR UPDATE";

    public const string WriteConflict = """
        INSERT INTO converge.conflicts (id, scope, collection, doc, rev, status, record, created_at, resolved_at, owner, client) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, status = excluded.status, record = excluded.record, resolved_at = excluded.resolved_at,
            owner = coalesce(excluded.owner, converge.conflicts.owner)
        """;

    /// <summary>
    /// Raises the stored clock, unless another transaction holds its row: every push writes the clock, and waiting for
    /// that row would make pushes to different scopes commit one at a time.
    /// </summary>
    /// <remarks>
    /// A skipped write leaves the stored clock a few pushes behind the timestamps handed out, never ahead and never going
    /// back; the server saves its clock again when it stops, and a restart also follows the wall clock.
    /// </remarks>
    public const string WriteClock = """
        UPDATE converge.meta SET value = $1
        WHERE key = (SELECT key FROM converge.meta WHERE key = 'clock' FOR UPDATE SKIP LOCKED) AND value < $1
        """;

    public const string ReadClock = "SELECT value FROM converge.meta WHERE key = 'clock'";

    public const string EnsureEpoch = "INSERT INTO converge.meta (key, value) VALUES ('epoch', $1) ON CONFLICT DO NOTHING";

    public const string ReadEpoch = "SELECT value FROM converge.meta WHERE key = 'epoch'";

    public const string WriteEpoch = "UPDATE converge.meta SET value = $1 WHERE key = 'epoch'";

    /// <summary>
    /// A page of a scope's changes and its counter, in one statement so they come from one snapshot. Each part reads one
    /// more row than the page holds, to tell whether more follow, and sends only the rows that start within the page's
    /// bytes ($4), with the number of rows it read, so a part cut short by bytes says so without sending what it cut.
    /// </summary>
    public const string ReadChanges = """
        SELECT 0, revision, min_valid, NULL, NULL, NULL FROM converge.scopes WHERE scope = $1
        UNION ALL
        (SELECT 1, rev, total, collection, id, state FROM (
            SELECT rev, collection, id, state, count(*) OVER () AS total,
                   sum(octet_length(state)) OVER (ORDER BY rev ROWS UNBOUNDED PRECEDING) - octet_length(state) AS before
            FROM (SELECT rev, collection, id, state FROM converge.documents WHERE scope = $1 AND rev > $2 ORDER BY rev LIMIT $3) AS rows) AS sized
         WHERE before < $4 ORDER BY rev)
        UNION ALL
        (SELECT 2, rev, total, NULL, NULL, record FROM (
            SELECT rev, record, count(*) OVER () AS total,
                   sum(octet_length(record)) OVER (ORDER BY rev ROWS UNBOUNDED PRECEDING) - octet_length(record) AS before
            FROM (SELECT rev, record FROM converge.conflicts WHERE scope = $1 AND rev > $2 ORDER BY rev LIMIT $3) AS rows) AS sized
         WHERE before < $4 ORDER BY rev)
        """;

    /// <summary>A page of a scope's open conflict records after a revision: up to $3 rows that start within $4 bytes, with the number of rows read.</summary>
    public const string ReadOpenConflicts = """
        SELECT record, total FROM (
            SELECT rev, record, count(*) OVER () AS total,
                   sum(octet_length(record)) OVER (ORDER BY rev ROWS UNBOUNDED PRECEDING) - octet_length(record) AS before
            FROM (SELECT rev, record FROM converge.conflicts WHERE scope = $1 AND status = 0 AND rev > $2 ORDER BY rev LIMIT $3) AS rows) AS sized
        WHERE before < $4 ORDER BY rev
        """;

    public const string CompactionTargets = """
        SELECT scope, max(rev) FROM (
            SELECT scope, rev FROM converge.documents WHERE deleted AND deleted_at < $1
            UNION ALL
            SELECT scope, rev FROM converge.conflicts WHERE status = 1 AND resolved_at < $1) AS old
        GROUP BY scope ORDER BY scope
        """;

    public const string CompactionDocuments = """
        SELECT rev, collection, id, coalesce(deleted AND deleted_at < $4, false), state FROM converge.documents
        WHERE scope = $1 AND rev > $2 AND rev <= $3 ORDER BY rev LIMIT $5
        """;

    public const string CompactionConflicts = """
        SELECT rev, id, coalesce(status = 1 AND resolved_at < $4, false), record FROM converge.conflicts
        WHERE scope = $1 AND rev > $2 AND rev <= $3 ORDER BY rev LIMIT $5
        """;

    public const string DeleteDocuments = """
        DELETE FROM converge.documents d USING unnest($2::text[], $3::text[]) AS k (collection, id)
        WHERE d.scope = $1 AND d.collection = k.collection AND d.id = k.id
        """;

    public const string DeleteConflicts = "DELETE FROM converge.conflicts WHERE id = ANY($1::text[])";

    public const string MoveDocuments = """
        UPDATE converge.documents d SET rev = m.rev, state = m.state
        FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS m (collection, id, rev, state)
        WHERE d.scope = $1 AND d.collection = m.collection AND d.id = m.id
        """;

    public const string MoveConflicts = """
        UPDATE converge.conflicts c SET rev = m.rev, record = m.record
        FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS m (id, rev, record)
        WHERE c.id = m.id
        """;

    public const string WriteCompactedScope = "UPDATE converge.scopes SET revision = $2, min_valid = $3 WHERE scope = $1";

    public const string CheckHealth = "SELECT max(version) FROM converge.schema_version";

    public static NpgsqlBatchCommand Command(string sql) => new(sql);

    /// <summary>Adds the next positional parameter.</summary>
    public static NpgsqlBatchCommand Bind<T>(this NpgsqlBatchCommand command, T value)
    {
        command.Parameters.Add(new NpgsqlParameter<T> { TypedValue = value });
        return command;
    }

    /// <summary>Adds the next positional parameter, with its PostgreSQL type.</summary>
    public static NpgsqlBatchCommand Bind<T>(this NpgsqlBatchCommand command, T value, NpgsqlDbType type)
    {
        command.Parameters.Add(new NpgsqlParameter<T> { TypedValue = value, NpgsqlDbType = type });
        return command;
    }

    /// <summary>Adds the next positional parameter.</summary>
    public static NpgsqlCommand Bind<T>(this NpgsqlCommand command, T value)
    {
        command.Parameters.Add(new NpgsqlParameter<T> { TypedValue = value });
        return command;
    }

    /// <summary>Sends a notification on a channel: delivered when the transaction commits.</summary>
    public const string Notify = "SELECT pg_notify($1, $2)";
}
