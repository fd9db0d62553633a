using Converge.Sqlite;
using System.Globalization;
using Converge.Protocol;
using Microsoft.Data.Sqlite;

namespace Converge.Client.Storage;

/// <summary>
/// The client's SQLite store (WAL): one write connection behind an async gate, so every write is one short transaction,
/// and pooled connections for reads, which WAL lets run beside a write.
/// </summary>
internal sealed class ClientStore : IDisposable
{
    /// <summary>
    /// The schema this code reads and writes. Version 2 added <c>cursors.epoch</c> and the <c>stale</c> table; version 3
    /// added <c>documents.put_id</c>, made <c>outbox.mutation</c> nullable and indexes only the outbox rows that hold their
    /// mutation. An older store is upgraded at open.
    /// </summary>
    public const int SchemaVersion = 3;

    /// <summary>
    /// The JSON of a new document's put kept in its row (<c>put_id</c>), from the row of the documents table named <c>d</c>:
    /// the put's fields are the document's value and its timestamp the one every field has.
    /// </summary>
    internal const string ImplicitPut = "json_object('id', d.put_id, 'scope', d.scope, 'collection', d.collection, 'doc', d.id, 'op', 'put', 'hlc', json(d.local_hlc), 'base', 0, 'fields', json(d.local_value))";

    /// <summary>The mutation JSON of the outbox row named <c>o</c>: stored, or the put its document's row holds.</summary>
    internal const string OutboxMutation = "coalesce(o.mutation, (SELECT " + ImplicitPut + " FROM documents d WHERE d.scope = o.scope AND d.collection = o.collection AND d.id = o.doc AND d.put_id = o.id))";

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS meta (
            key TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS documents (
            scope TEXT NOT NULL,
            collection TEXT NOT NULL,
            id TEXT NOT NULL,
            server_state TEXT NULL,
            server_revision INTEGER NOT NULL DEFAULT 0,
            local_value TEXT NULL,
            local_hlc TEXT NULL,
            pending INTEGER NOT NULL DEFAULT 0,
            put_id INTEGER NULL
        );
        CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER NOT NULL PRIMARY KEY,
            scope TEXT NOT NULL,
            collection TEXT NOT NULL,
            doc TEXT NOT NULL,
            conflict_id TEXT NULL,
            mutation TEXT NULL
        );
        CREATE TABLE IF NOT EXISTS cursors (
            scope TEXT NOT NULL PRIMARY KEY,
            cursor INTEGER NOT NULL,
            epoch TEXT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS stale (
            scope TEXT NOT NULL,
            collection TEXT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (scope, collection, id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS conflicts (
            id TEXT NOT NULL PRIMARY KEY,
            scope TEXT NOT NULL,
            collection TEXT NOT NULL,
            doc TEXT NOT NULL,
            revision INTEGER NOT NULL,
            status TEXT NOT NULL,
            record TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS conflicts_scope ON conflicts (scope);
        """;

    // A new document's put is kept in the document's row (put_id, its outbox row's mutation NULL), so the write costs
    // no index entry in the outbox. The triggers write the put into its outbox row before the row's value changes or
    // the row goes, and clear put_id when the outbox row goes.
    private static readonly string Indexes = """
        CREATE UNIQUE INDEX IF NOT EXISTS documents_key ON documents (scope, collection, id);
        DROP INDEX IF EXISTS outbox_document;
        CREATE INDEX IF NOT EXISTS outbox_stored ON outbox (scope, collection, doc, id) WHERE mutation IS NOT NULL;
        CREATE INDEX IF NOT EXISTS outbox_conflict ON outbox (conflict_id) WHERE conflict_id IS NOT NULL;
        CREATE TRIGGER IF NOT EXISTS documents_put_update BEFORE UPDATE OF local_value, local_hlc ON documents WHEN OLD.put_id IS NOT NULL
        BEGIN
            UPDATE outbox SET mutation = (SELECT {{put}} FROM documents d WHERE d.rowid = OLD.rowid) WHERE id = OLD.put_id AND mutation IS NULL;
        END;
        CREATE TRIGGER IF NOT EXISTS documents_put_delete BEFORE DELETE ON documents WHEN OLD.put_id IS NOT NULL
        BEGIN
            UPDATE outbox SET mutation = (SELECT {{put}} FROM documents d WHERE d.rowid = OLD.rowid) WHERE id = OLD.put_id AND mutation IS NULL;
        END;
        CREATE TRIGGER IF NOT EXISTS outbox_put_delete AFTER DELETE ON outbox WHEN OLD.mutation IS NULL
        BEGIN
            UPDATE documents SET put_id = NULL WHERE scope = OLD.scope AND collection = OLD.collection AND id = OLD.doc AND put_id = OLD.id;
        END;
        """.Replace("{{put}}", ImplicitPut, StringComparison.Ordinal);

    private readonly SqliteConnection _write;
    private readonly FileStream _lock;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly StoreStatements _statements;
    private readonly WalCheckpointer _checkpointer;
    private readonly string _connectionString;
    private bool _disposed;

    private ClientStore(string path, FileStream lockFile)
    {
        Path = path;
        _lock = lockFile;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _write = new SqliteConnection(_connectionString);
        _write.Open();
        Execute("PRAGMA journal_mode=WAL;");
        Execute("PRAGMA synchronous=NORMAL;");
        Execute("PRAGMA busy_timeout=30000;");
        Execute("PRAGMA temp_store=MEMORY;");
        Execute("BEGIN IMMEDIATE;");
        try
        {
            Execute(Schema);
            var version = Meta("schema_version");
            if (version is null)
            {
                SetMeta("schema_version", SchemaVersion.ToString(CultureInfo.InvariantCulture));
                SetMeta("replica_id", Protocol.ReplicaId.Format(Protocol.ReplicaId.NewId()));
                SetMeta("next_mutation_id", "1");
            }
            else if (int.Parse(version, CultureInfo.InvariantCulture) > SchemaVersion)
            {
                throw new InvalidOperationException($"The local store {path} has schema version {version}; this version of Converge.Client reads up to {SchemaVersion}.");
            }
            else if (int.Parse(version, CultureInfo.InvariantCulture) < SchemaVersion)
            {
                if (!HasColumn("cursors", "epoch"))
                {
                    // Version 1 had no epochs: the cursors it holds adopt the server's epoch at their next pull.
                    Execute("ALTER TABLE cursors ADD COLUMN epoch TEXT NULL;");
                }

                if (!HasColumn("documents", "put_id"))
                {
                    Execute("ALTER TABLE documents ADD COLUMN put_id INTEGER NULL;");
                }

                if (IsNotNull("outbox", "mutation"))
                {
                    // Version 2's outbox held every mutation (NOT NULL): copied as it is into the table that lets a
                    // document's row hold its put.
                    Execute("""
                        DROP INDEX IF EXISTS outbox_document;
                        DROP INDEX IF EXISTS outbox_conflict;
                        ALTER TABLE outbox RENAME TO outbox_v2;
                        CREATE TABLE outbox (
                            id INTEGER NOT NULL PRIMARY KEY,
                            scope TEXT NOT NULL,
                            collection TEXT NOT NULL,
                            doc TEXT NOT NULL,
                            conflict_id TEXT NULL,
                            mutation TEXT NULL
                        );
                        INSERT INTO outbox (id, scope, collection, doc, conflict_id, mutation)
                            SELECT id, scope, collection, doc, conflict_id, mutation FROM outbox_v2;
                        DROP TABLE outbox_v2;
                        """);
                }

                SetMeta("schema_version", SchemaVersion.ToString(CultureInfo.InvariantCulture));
            }

            Execute(Indexes);

            if (!Protocol.ReplicaId.TryParse(Meta("replica_id"), out var replica))
            {
                throw new InvalidDataException($"The local store {path} holds no valid replica id.");
            }

            ReplicaId = replica;

            // Local writes keep the next mutation id and the clock in memory: each write's id and timestamp are in its
            // outbox row, and the transaction that removes rows from the outbox stores both in meta. So the next id is
            // past both meta's and the outbox's, and the clock at least meta's and the last outbox mutation's.
            NextMutationId = Math.Max(long.Parse(Meta("next_mutation_id")!, CultureInfo.InvariantCulture), LastOutboxId() + 1);
            HybridTimestamp? clock = HybridTimestamp.TryParse(Meta("clock"), out var saved) ? saved : null;
            if (LastOutboxTimestamp() is { } written && (clock is null || written > clock))
            {
                clock = written;
            }

            Clock = clock;
            Execute("COMMIT;");
        }
        catch
        {
            RollBackIfOpen();
            throw;
        }

        _statements = new StoreStatements(_write);
        Execute(WalCheckpointer.WriterPragmas);
        _checkpointer = new WalCheckpointer(_connectionString);
    }

    /// <summary>Gets the full path of the database file.</summary>
    public string Path { get; }

    /// <summary>Gets this replica's id, made when the store was created and made anew when the server finds the client's mutation ids reused.</summary>
    /// <remarks>Set under the write gate only, by the transaction that stores the new id.</remarks>
    public ulong ReplicaId { get; internal set; }

    /// <summary>Gets the last clock reading persisted when the store was opened: meta's, or the last outbox mutation's when later.</summary>
    public HybridTimestamp? Clock { get; }

    /// <summary>Gets or sets the next mutation id; used under the write gate only.</summary>
    internal long NextMutationId { get; set; }

    /// <summary>Opens (or creates) a store, taking its lock file so no other client uses it at the same time.</summary>
    /// <exception cref="InvalidOperationException">Another client, in this process or another, has the store open.</exception>
    public static ClientStore Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        FileStream lockFile;
        try
        {
            // FileShare.None takes an exclusive advisory lock that the OS releases when the process dies. Two clients
            // on one file would hand out the same mutation ids and fork the clock.
            lockFile = new FileStream(full + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The local store {full} is already open in another ConvergeClient.", e);
        }

        try
        {
            return new ClientStore(full, lockFile);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Opens a pooled connection for reads.</summary>
    public SqliteConnection OpenRead()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

    /// <summary>Runs <paramref name="work"/> in one write transaction; commits when it returns, rolls back when it or the commit throws.</summary>
    /// <remarks>
    /// A failed commit can leave SQLite's transaction open (a busy or constrained commit), and SQLite rolls a transaction
    /// back by itself on some errors (a full disk, an I/O error): the rollback runs only while a transaction is still open,
    /// so the next BEGIN works and the error that failed the transaction is the one that surfaces.
    /// </remarks>
    public async Task<T> WriteAsync<T>(Func<StoreTransaction, T> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _statements.Begin.Execute();
            var nextMutationId = NextMutationId;
            var replicaId = ReplicaId;
            T result;
            try
            {
                var transaction = new StoreTransaction(this, _statements);
                result = work(transaction);
                transaction.Flush();
                _statements.Commit.Execute();
            }
            catch
            {
                NextMutationId = nextMutationId;
                ReplicaId = replicaId;
                RollBackIfOpen();
                throw;
            }

            _checkpointer.Committed();
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _checkpointer.Dispose();
            _statements.Dispose();
            try
            {
                Execute("PRAGMA wal_checkpoint(PASSIVE);");
            }
            catch (SqliteException)
            {
                // A reader elsewhere keeps the WAL; the next open folds it in.
            }

            _write.Dispose();
            SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
            _lock.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Creates a command on the write connection, for the rare statements of a write transaction that are not prepared once.</summary>
    internal SqliteCommand CreateCommand() => _write.CreateCommand();

    internal int Execute(string sql)
    {
        using var command = _write.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteNonQuery();
    }

    /// <summary>Rolls back the write connection's transaction if SQLite still has one open; a failure to roll back is not allowed to hide the error being handled.</summary>
    private void RollBackIfOpen()
    {
        if (_write.Handle is not { } handle || SQLitePCL.raw.sqlite3_get_autocommit(handle) != 0)
        {
            return;
        }

        try
        {
            Execute("ROLLBACK;");
        }
        catch (SqliteException)
        {
            // The connection is in trouble already; the caller rethrows the error that brought it here.
        }
    }

    private long LastOutboxId()
    {
        using var command = _write.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(id), 0) FROM outbox;";
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private HybridTimestamp? LastOutboxTimestamp()
    {
        using var command = _write.CreateCommand();
        command.CommandText = "SELECT " + OutboxMutation + " FROM outbox o ORDER BY id DESC LIMIT 1;";
        return command.ExecuteScalar() is string json ? StoreJson.DeserializeMutation(json).Hlc : null;
    }

    private bool HasColumn(string table, string column) => ColumnMatches(table, column, "");

    private bool IsNotNull(string table, string column) => ColumnMatches(table, column, " AND \"notnull\" != 0");

    /// <summary>Whether the table has the column, with a further condition on its pragma_table_info row.</summary>
    private bool ColumnMatches(string table, string column, string condition)
    {
        using var command = _write.CreateCommand();
        command.CommandText = "SELECT EXISTS (SELECT 1 FROM pragma_table_info($t) WHERE name = $c" + condition + ");";
        command.Parameters.AddWithValue("$t", table);
        command.Parameters.AddWithValue("$c", column);
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) != 0;
    }

    private string? Meta(string key)
    {
        using var command = _write.CreateCommand();
        command.CommandText = "SELECT value FROM meta WHERE key = $key;";
        command.Parameters.AddWithValue("$key", key);
        return command.ExecuteScalar() as string;
    }

    private void SetMeta(string key, string value)
    {
        using var command = _write.CreateCommand();
        command.CommandText = "INSERT INTO meta (key, value) VALUES ($key, $value) ON CONFLICT (key) DO UPDATE SET value = excluded.value;";
        command.Parameters.AddWithValue("$key", key);
        command.Parameters.AddWithValue("$value", value);
        command.ExecuteNonQuery();
    }
}
