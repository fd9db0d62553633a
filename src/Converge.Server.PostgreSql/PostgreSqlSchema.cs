namespace Converge.Server.PostgreSql;

/// <summary>The store's tables, in the <c>converge</c> schema, and the migrations that make them.</summary>
/// <remarks>
/// Key columns use the "C" collation: keys compare as bytes, as they do in the SQLite store and the protocol, whatever
/// the database's locale, and their indexes stay cheap to search.
/// </remarks>
internal static class PostgreSqlSchema
{
    /// <summary>The schema this code reads and writes.</summary>
    /// <remarks>
    /// 2: client progress records have a last-used time and keys in namespaces (<c>apikey:</c>, <c>jwt:</c>, <c>auth:</c>).
    /// 3: open conflicts have an index per document, and a record its owner.
    /// </remarks>
    public const int Version = 3;

    /// <summary>The key of the transaction-level advisory lock under which a node creates or migrates the schema ("Converge" in ASCII).</summary>
    public const long MigrationLockKey = 0x436F_6E76_6572_6765L;

    /// <summary>Creates the schema and its version table, when missing; run under the migration lock.</summary>
    public const string Prepare = """
        CREATE SCHEMA IF NOT EXISTS converge;
        CREATE TABLE IF NOT EXISTS converge.schema_version (
            version integer NOT NULL PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
        """;

    /// <summary>The migrations: the one at index <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>.</summary>
    public static readonly IReadOnlyList<string> Migrations =
    [
        """
        CREATE TABLE converge.meta (
            key text COLLATE "C" NOT NULL PRIMARY KEY,
            value text COLLATE "C" NOT NULL
        );
        CREATE TABLE converge.scopes (
            scope text COLLATE "C" NOT NULL PRIMARY KEY,
            revision bigint NOT NULL DEFAULT 0,
            min_valid bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE converge.documents (
            scope text COLLATE "C" NOT NULL,
            collection text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            rev bigint NOT NULL,
            deleted boolean NOT NULL,
            deleted_at timestamptz,
            state bytea NOT NULL,
            PRIMARY KEY (scope, collection, id)
        );
        CREATE UNIQUE INDEX documents_scope_rev ON converge.documents (scope, rev);
        CREATE INDEX documents_tombstones ON converge.documents (deleted_at) WHERE deleted;
        CREATE TABLE converge.conflicts (
            id text COLLATE "C" NOT NULL PRIMARY KEY,
            scope text COLLATE "C" NOT NULL,
            collection text COLLATE "C" NOT NULL,
            doc text COLLATE "C" NOT NULL,
            rev bigint NOT NULL,
            status smallint NOT NULL,
            record bytea NOT NULL,
            created_at timestamptz NOT NULL,
            resolved_at timestamptz
        );
        CREATE INDEX conflicts_scope_rev ON converge.conflicts (scope, rev);
        CREATE INDEX conflicts_resolved ON converge.conflicts (resolved_at) WHERE status = 1;
        CREATE TABLE converge.clients (
            principal text COLLATE "C" NOT NULL,
            client text COLLATE "C" NOT NULL,
            last_mutation bigint NOT NULL DEFAULT 0,
            last_hlc bytea,
            recent bytea,
            PRIMARY KEY (principal, client)
        );
        INSERT INTO converge.meta (key, value) VALUES ('clock', '');
        """,
        // 1 to 2: a last-used time per client progress record (the migration's own, so compaction keeps existing records
        // for a whole client retention), and keys made before keys had namespaces become 'legacy:' and the SHA-256 of the
        // old key, the form PrincipalIdentity.LegacyKeys looks them up by. No old key stays: `converge serve --api-key
        // KEY=SCOPES` made the secret itself the key.
        """
        ALTER TABLE converge.clients ADD COLUMN last_used timestamptz NOT NULL DEFAULT now();
        UPDATE converge.clients SET principal = 'legacy:' || upper(encode(sha256(convert_to(principal, 'UTF8')), 'hex'));
        CREATE INDEX clients_last_used ON converge.clients (last_used);
        """,

        // 2 to 3: open conflicts are looked up per document (one open record per device of a principal, caps per document
        // and per scope), and a record keeps whose device opened it.
        """
        ALTER TABLE converge.conflicts ADD COLUMN owner text COLLATE "C", ADD COLUMN client text COLLATE "C";
        CREATE INDEX conflicts_open ON converge.conflicts (scope, collection, doc) WHERE status = 0;
        """,
    ];
}
