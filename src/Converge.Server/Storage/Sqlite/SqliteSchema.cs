using System.Globalization;
using Converge.Server.Authentication;
using Microsoft.Data.Sqlite;
using static Converge.Server.Storage.Sqlite.SqliteSql;

namespace Converge.Server.Storage.Sqlite;

/// <summary>The embedded store's tables: made in a new database, checked and migrated in one made before, with the store's epoch.</summary>
internal static class SqliteSchema
{
    /// <summary>The schema this code reads and writes.</summary>
    /// <remarks>2: client progress records have a last-used time and keys in namespaces (<c>apikey:</c>, <c>jwt:</c>, <c>auth:</c>).</remarks>
    public const int Version = 2;

    /// <summary>Creates the schema in a new database, or checks and migrates the one there, in one transaction.</summary>
    /// <param name="connection">The writer's connection.</param>
    /// <param name="path">The database file, for the errors.</param>
    /// <returns>The store's epoch, made with the schema when there was none.</returns>
    /// <exception cref="InvalidOperationException">The store was made by a newer version.</exception>
    public static string Ensure(SqliteConnection connection, string path)
    {
        Execute(connection, "BEGIN IMMEDIATE;");
        try
        {
            Execute(connection, "CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;");
            var version = Scalar(connection, "SELECT value FROM meta WHERE key = 'schema_version';") as string;
            if (version is null)
            {
                Execute(connection, """
                    CREATE TABLE scopes (
                        scope TEXT NOT NULL PRIMARY KEY,
                        revision INTEGER NOT NULL,
                        min_valid INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    CREATE TABLE documents (
                        scope TEXT NOT NULL,
                        collection TEXT NOT NULL,
                        id TEXT NOT NULL,
                        rev INTEGER NOT NULL,
                        deleted INTEGER NOT NULL,
                        deleted_at INTEGER,
                        state BLOB NOT NULL,
                        PRIMARY KEY (scope, collection, id)
                    );
                    CREATE UNIQUE INDEX documents_scope_rev ON documents (scope, rev);
                    CREATE INDEX documents_tombstones ON documents (deleted_at) WHERE deleted = 1;
                    CREATE TABLE conflicts (
                        id TEXT NOT NULL PRIMARY KEY,
                        scope TEXT NOT NULL,
                        collection TEXT NOT NULL,
                        doc TEXT NOT NULL,
                        rev INTEGER NOT NULL,
                        status INTEGER NOT NULL,
                        record BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        resolved_at INTEGER,
                        owner TEXT,
                        client TEXT
                    );
                    CREATE INDEX conflicts_scope_rev ON conflicts (scope, rev);
                    CREATE INDEX conflicts_resolved ON conflicts (resolved_at) WHERE status = 1;
                    CREATE TABLE clients (
                        principal TEXT NOT NULL,
                        client TEXT NOT NULL,
                        last_mutation INTEGER NOT NULL,
                        last_hlc BLOB NOT NULL,
                        recent BLOB,
                        last_used INTEGER NOT NULL,
                        PRIMARY KEY (principal, client)
                    ) WITHOUT ROWID;
                    CREATE INDEX clients_last_used ON clients (last_used);
                    """);
                Execute(connection, $"INSERT INTO meta (key, value) VALUES ('schema_version', '{Version}');");
            }
            else if (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var found) || found < 1 || found > Version)
            {
                throw new InvalidOperationException(
                    $"The Converge store '{path}' has schema version {version}; this server reads version {Version}. Use a server of the version that made it.");
            }
            else
            {
                // The window of recent mutation timestamps came after the first stores; such a store gets the column now.
                if (Scalar(connection, "SELECT count(*) FROM pragma_table_info('clients') WHERE name = 'recent';") is 0L)
                {
                    Execute(connection, "ALTER TABLE clients ADD COLUMN recent BLOB;");
                }

                if (found < 2)
                {
                    MigrateClientKeys(connection);
                }
            }

            // Open conflicts are looked up per document (one open record per device, a cap per document and per scope);
            // a store made before that gets the index now.
            // A store made before that gets the index now, and the column that says whose device opened a record.
            if (Scalar(connection, "SELECT count(*) FROM pragma_table_info('conflicts') WHERE name = 'owner';") is 0L)
            {
                Execute(connection, "ALTER TABLE conflicts ADD COLUMN owner TEXT;");
                Execute(connection, "ALTER TABLE conflicts ADD COLUMN client TEXT;");
            }

            Execute(connection, "CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts (scope, collection, doc) WHERE status = 0;");

            // The epoch is made with the schema; a store made before epochs existed gets its first one now.
            if (Scalar(connection, "SELECT value FROM meta WHERE key = 'epoch';") is not string epoch)
            {
                epoch = NewEpoch();
                WriteEpoch(connection, epoch);
            }

            Execute(connection, "COMMIT;");
            return epoch;
        }
        catch
        {
            Execute(connection, "ROLLBACK;");
            throw;
        }
    }

    /// <summary>
    /// Version 1 to 2: client progress records get a last-used time (the migration's, so compaction keeps them for a whole
    /// client retention from now), and their keys, made before keys had namespaces, become <c>legacy:</c> and the SHA-256 of
    /// the old key. No old key stays: <c>converge serve --api-key KEY=SCOPES</c> made the secret itself the key.
    /// </summary>
    /// <remarks>The server finds a device's migrated record from its principal (<c>PrincipalIdentity.LegacyKeys</c>) at its next push.</remarks>
    private static void MigrateClientKeys(SqliteConnection connection)
    {
        connection.CreateFunction("converge_legacy_key", (string principal) => PrincipalIdentity.LegacyPrefix + PrincipalIdentity.HashHex(principal), isDeterministic: true);
        using (var command = connection.CreateCommand())
        {
            // secure_delete overwrites the freed bytes of the old keys instead of leaving them in free pages of the file.
            command.CommandText = $"""
                PRAGMA secure_delete = ON;
                ALTER TABLE clients ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
                UPDATE clients SET principal = converge_legacy_key(principal), last_used = $now;
                CREATE INDEX clients_last_used ON clients (last_used);
                UPDATE meta SET value = '{Version}' WHERE key = 'schema_version';
                PRAGMA secure_delete = OFF;
                """;
            command.Parameters.AddWithValue("$now", TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
        }
    }

    /// <summary>A new epoch: 128 random bits as 32 hex digits.</summary>
    public static string NewEpoch() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    /// <summary>Writes the store's epoch, in the caller's transaction.</summary>
    public static void WriteEpoch(SqliteConnection connection, string epoch)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO meta (key, value) VALUES ('epoch', $epoch) ON CONFLICT (key) DO UPDATE SET value = excluded.value;";
        command.Parameters.AddWithValue("$epoch", epoch);
        command.ExecuteNonQuery();
    }
}
