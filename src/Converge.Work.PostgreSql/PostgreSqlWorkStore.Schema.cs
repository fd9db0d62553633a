using Converge.PostgreSql;
using Npgsql;

namespace Converge.Work;

/// <summary>The PostgreSQL store's schema, created and migrated under an advisory lock, and the wake-ups other nodes send.</summary>
internal sealed partial class PostgreSqlWorkStore
{
    private void Migrate()
    {
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        Execute(connection, $"SELECT pg_advisory_xact_lock({MigrationLockKey})");
        Execute(connection, $"CREATE SCHEMA IF NOT EXISTS {_s}; CREATE TABLE IF NOT EXISTS {_s}.schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
        int found;
        using (var read = new NpgsqlCommand($"SELECT coalesce(max(version), 0) FROM {_s}.schema_version", connection))
        {
            found = (int)read.ExecuteScalar()!;
        }

        if (found > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"The Converge.Work store in schema {_s} has schema version {found}, newer than this Converge.Work ({SchemaVersion}). Upgrade Converge.Work.");
        }

        for (var version = found + 1; version <= SchemaVersion; version++)
        {
            Execute(connection, Migrations(version));
            Execute(connection, $"INSERT INTO {_s}.schema_version (version) VALUES ({version})");
        }

        transaction.Commit();
        if (found < SchemaVersion)
        {
            PostgreSqlLog.SchemaMigrated(_logger, Path, found, SchemaVersion);
        }
    }

    private string Migrations(int version) => version switch
    {
        1 => $"""
            CREATE TABLE {_s}.work (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id uuid NOT NULL CONSTRAINT work_id_key UNIQUE,
                worker_name text NOT NULL,
                state smallint NOT NULL,
                input text NOT NULL,
                output text NOT NULL DEFAULT '{"{}"}',
                progress text,
                tags text NOT NULL,
                unique_name text,
                input_merger text NOT NULL,
                requires bigint NOT NULL,
                initial_delay_ms bigint NOT NULL,
                interval_ms bigint NOT NULL,
                flex_ms bigint NOT NULL,
                backoff_policy int NOT NULL,
                backoff_delay_ms bigint NOT NULL,
                expedited boolean NOT NULL,
                out_of_quota int NOT NULL,
                last_enqueue_time bigint NOT NULL,
                run_attempt_count int NOT NULL,
                period_count int NOT NULL,
                generation int NOT NULL,
                stop_reason int NOT NULL,
                failure_reason text,
                next_run_at bigint NOT NULL,
                override_constraints boolean NOT NULL,
                has_prerequisites boolean NOT NULL,
                created_at bigint NOT NULL,
                finished_at bigint,
                has_dependents boolean NOT NULL DEFAULT false,
                owner text,
                lease_until timestamptz);
            CREATE INDEX work_due ON {_s}.work (expedited, next_run_at, seq) WHERE state = 0;
            CREATE INDEX work_running ON {_s}.work (owner) WHERE state = 1;
            CREATE INDEX work_lease ON {_s}.work (lease_until) WHERE state = 1;
            CREATE INDEX work_finished ON {_s}.work (finished_at) WHERE state IN (2, 3, 5);
            CREATE TABLE {_s}.work_tag (tag text NOT NULL, work_id uuid NOT NULL, PRIMARY KEY (tag, work_id));
            CREATE INDEX work_tag_work ON {_s}.work_tag (work_id);
            CREATE TABLE {_s}.work_name (name text NOT NULL, work_id uuid NOT NULL, PRIMARY KEY (name, work_id));
            CREATE INDEX work_name_work ON {_s}.work_name (work_id);
            CREATE TABLE {_s}.dependency (work_id uuid NOT NULL, prerequisite_id uuid NOT NULL, PRIMARY KEY (work_id, prerequisite_id));
            CREATE INDEX dependency_prerequisite ON {_s}.dependency (prerequisite_id);
            """,
        _ => throw new ArgumentOutOfRangeException(nameof(version)),
    };

    private static void Execute(NpgsqlConnection connection, string sql)
    {
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    // ---- wake-ups ----

    /// <summary>Listens for other nodes' commits; after a gap, assumes something was missed.</summary>
    private Task ListenAsync(CancellationToken cancellationToken) => PostgresListener.RunAsync(
        _dataSource,
        _channel,
        payload =>
        {
            var bar = payload.LastIndexOf('|');
            if (bar > 0 && !payload.AsSpan(0, bar).SequenceEqual(_node))
            {
                _onWake(payload.EndsWith("|r", StringComparison.Ordinal));
            }
        },
        afterLoss =>
        {
            if (afterLoss)
            {
                _onWake(true);
            }
        },
        (e, delay) => PostgreSqlLog.ListenFailed(_logger, e, Path, delay),
        cancellationToken);
}
