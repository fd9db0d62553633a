using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Converge.Client;
using Microsoft.Data.Sqlite;

namespace Converge.Benchmarks;

/// <summary>Local writes of the sync benchmark, against raw Microsoft.Data.Sqlite inserts of the same rows in the same run.</summary>
/// <remarks>
/// Both sides start from the same <see cref="BenchDoc"/> objects and serialize them with the same source-generated
/// metadata. The raw side inserts (id, JSON) with one prepared INSERT into a table keyed by id, with prepared BEGIN and
/// COMMIT, on a file in the same folder with the client store's settings (WAL, synchronous=NORMAL).
/// </remarks>
internal static class SyncBenchLocal
{
    private const int SingleN = 10_000;
    private const int BatchedN = 100_000;
    private const int Batch = 500;
    private const int Rounds = 3;

    public sealed record Figures(double SingleSeconds, double RawSingleSeconds, double BatchedSeconds, double RawBatchedSeconds, double StoreSqlBatchedSeconds)
    {
        public double StoreSqlBatchedPerSecond => BatchedN / StoreSqlBatchedSeconds;

        public double SinglePerSecond => SingleN / SingleSeconds;

        public double RawSinglePerSecond => SingleN / RawSingleSeconds;

        public double BatchedPerSecond => BatchedN / BatchedSeconds;

        public double RawBatchedPerSecond => BatchedN / RawBatchedSeconds;

        public double SingleRatio => SingleSeconds / RawSingleSeconds;

        public double BatchedRatio => BatchedSeconds / RawBatchedSeconds;

        public JsonObject ToJson() => new()
        {
            ["single_n"] = SingleN,
            ["batched_n"] = BatchedN,
            ["batch"] = Batch,
            ["rounds"] = Rounds,
            ["single_s"] = Math.Round(SingleSeconds, 4),
            ["raw_single_s"] = Math.Round(RawSingleSeconds, 4),
            ["single_per_s"] = Math.Round(SinglePerSecond, 1),
            ["raw_single_per_s"] = Math.Round(RawSinglePerSecond, 1),
            ["single_ratio"] = Math.Round(SingleRatio, 3),
            ["batched_s"] = Math.Round(BatchedSeconds, 4),
            ["raw_batched_s"] = Math.Round(RawBatchedSeconds, 4),
            ["batched_per_s"] = Math.Round(BatchedPerSecond, 1),
            ["raw_batched_per_s"] = Math.Round(RawBatchedPerSecond, 1),
            ["batched_ratio"] = Math.Round(BatchedRatio, 3),
            ["store_sql_batched_s"] = Math.Round(StoreSqlBatchedSeconds, 4),
            ["store_sql_batched_per_s"] = Math.Round(StoreSqlBatchedPerSecond, 1),
        };
    }

    /// <summary>Warms both sides up, then runs each measurement <see cref="Rounds"/> times, interleaved, on fresh files; the medians.</summary>
    public static async Task<Figures> RunAsync(string directory, CancellationToken ct)
    {
        var docs = Enumerable.Range(0, BatchedN).Select(BenchDoc.Create).ToArray();
        var folder = Path.Combine(directory, "local");
        Directory.CreateDirectory(folder);
        var file = 0;
        string Next(string name) => Path.Combine(folder, $"{name}-{file++}.db");

        await ConvergeSingleAsync(Next("warm"), docs, 1_000, ct);
        RawSingle(Next("warm-raw"), docs, 1_000);
        await ConvergeBatchedAsync(Next("warm"), docs, 10_000, ct);
        RawBatched(Next("warm-raw"), docs, 10_000);

        StoreSql(Next("warm-sql"), docs, 10_000);
        var single = new List<double>();
        var rawSingle = new List<double>();
        var batched = new List<double>();
        var rawBatched = new List<double>();
        var storeSql = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            rawSingle.Add(RawSingle(Next("raw"), docs, SingleN));
            single.Add(await ConvergeSingleAsync(Next("converge"), docs, SingleN, ct));
            rawBatched.Add(RawBatched(Next("raw"), docs, BatchedN));
            batched.Add(await ConvergeBatchedAsync(Next("converge"), docs, BatchedN, ct));
            storeSql.Add(StoreSql(Next("sql"), docs, BatchedN));
        }

        return new Figures(Median(single), Median(rawSingle), Median(batched), Median(rawBatched), Median(storeSql));
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static async Task<ConvergeClient> OpenAsync(string path, CancellationToken ct)
    {
        var options = new ConvergeClientOptions { DatabasePath = path };
        options.Scopes.Add("bench");
        return await ConvergeClient.OpenAsync(options, ct);
    }

    private static async Task<double> ConvergeSingleAsync(string path, BenchDoc[] docs, int n, CancellationToken ct)
    {
        await using var client = await OpenAsync(path, ct);
        var collection = client.Collection("docs", SyncBenchJson.Default.BenchDoc);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            await collection.PutAsync(BenchDoc.Id(i), docs[i], ct);
        }

        return watch.Elapsed.TotalSeconds;
    }

    private static async Task<double> ConvergeBatchedAsync(string path, BenchDoc[] docs, int n, CancellationToken ct)
    {
        await using var client = await OpenAsync(path, ct);
        var collection = client.Collection("docs", SyncBenchJson.Default.BenchDoc);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < n; i += Batch)
        {
            var end = Math.Min(n, i + Batch);
            await client.WriteBatchAsync(
                b =>
                {
                    for (var j = i; j < end; j++)
                    {
                        b.Put(collection, BenchDoc.Id(j), docs[j]);
                    }
                },
                ct);
        }

        return watch.Elapsed.TotalSeconds;
    }

    private static double RawSingle(string path, BenchDoc[] docs, int n) => Raw(path, docs, n, 1);

    private static double RawBatched(string path, BenchDoc[] docs, int n) => Raw(path, docs, n, Batch);

    private static double Raw(string path, BenchDoc[] docs, int n, int batch)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, "PRAGMA synchronous=NORMAL;");
        Execute(connection, "CREATE TABLE docs (id TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL);");
        using var begin = Prepare(connection, "BEGIN IMMEDIATE;");
        using var commit = Prepare(connection, "COMMIT;");
        using var insert = Prepare(connection, "INSERT INTO docs (id, value) VALUES ($id, $value);");
        var id = insert.Parameters.Add("$id", SqliteType.Text);
        var value = insert.Parameters.Add("$value", SqliteType.Text);
        insert.Prepare();
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < n; i += batch)
        {
            begin.ExecuteNonQuery();
            var end = Math.Min(n, i + batch);
            for (var j = i; j < end; j++)
            {
                id.Value = BenchDoc.Id(j);
                value.Value = JsonSerializer.Serialize(docs[j], SyncBenchJson.Default.BenchDoc);
                insert.ExecuteNonQuery();
            }

            commit.ExecuteNonQuery();
        }

        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Not a baseline but a diagnosis: the SQL work a batched put does in the client store (the document's key lookup,
    /// its row, and its outbox row with the mutation's JSON, on the store's tables and indexes), with prepared
    /// Microsoft.Data.Sqlite statements and the rows' text made up front, in batches of 500.
    /// </summary>
    private static double StoreSql(string path, BenchDoc[] docs, int n)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, "PRAGMA synchronous=NORMAL;");
        Execute(connection, """
            CREATE TABLE documents (scope TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, server_state TEXT NULL,
                server_revision INTEGER NOT NULL DEFAULT 0, local_value TEXT NULL, local_hlc TEXT NULL, pending INTEGER NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX documents_key ON documents (scope, collection, id);
            CREATE TABLE outbox (id INTEGER NOT NULL PRIMARY KEY, scope TEXT NOT NULL, collection TEXT NOT NULL, doc TEXT NOT NULL,
                conflict_id TEXT NULL, mutation TEXT NOT NULL);
            CREATE INDEX outbox_document ON outbox (scope, collection, doc, id);
            """);
        const string Hlc = "0191a2b3c4d5-0003-9f0c1e2d3a4b5c6d";
        var ids = new string[n];
        var values = new string[n];
        var mutations = new string[n];
        for (var i = 0; i < n; i++)
        {
            ids[i] = BenchDoc.Id(i);
            values[i] = JsonSerializer.Serialize(docs[i], SyncBenchJson.Default.BenchDoc);
            mutations[i] = $$"""{"id":{{i + 1}},"scope":"bench","collection":"docs","doc":"{{ids[i]}}","op":"put","hlc":"{{Hlc}}","base":0,"fields":{{values[i]}}}""";
        }

        using var begin = Prepare(connection, "BEGIN IMMEDIATE;");
        using var commit = Prepare(connection, "COMMIT;");
        using var lookup = Prepare(connection, "SELECT server_state, server_revision, local_value, local_hlc, pending FROM documents WHERE scope = 'bench' AND collection = 'docs' AND id = $id;");
        var lookupId = lookup.Parameters.Add("$id", SqliteType.Text);
        using var document = Prepare(connection, """
            INSERT INTO documents (scope, collection, id, server_state, server_revision, local_value, local_hlc, pending) VALUES ('bench', 'docs', $id, NULL, 0, $value, $hlc, 1)
            ON CONFLICT (scope, collection, id) DO UPDATE SET local_value = excluded.local_value, local_hlc = excluded.local_hlc, pending = excluded.pending;
            """);
        var documentId = document.Parameters.Add("$id", SqliteType.Text);
        var documentValue = document.Parameters.Add("$value", SqliteType.Text);
        document.Parameters.AddWithValue("$hlc", "\"" + Hlc + "\"");
        using var outbox = Prepare(connection, "INSERT INTO outbox (id, scope, collection, doc, conflict_id, mutation) VALUES ($n, 'bench', 'docs', $id, NULL, $m);");
        var outboxN = outbox.Parameters.Add("$n", SqliteType.Integer);
        var outboxId = outbox.Parameters.Add("$id", SqliteType.Text);
        var outboxMutation = outbox.Parameters.Add("$m", SqliteType.Text);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < n; i += Batch)
        {
            begin.ExecuteNonQuery();
            for (var j = i; j < Math.Min(n, i + Batch); j++)
            {
                lookupId.Value = ids[j];
                using (var reader = lookup.ExecuteReader())
                {
                    reader.Read();
                }

                outboxN.Value = j + 1;
                outboxId.Value = ids[j];
                outboxMutation.Value = mutations[j];
                outbox.ExecuteNonQuery();
                documentId.Value = ids[j];
                documentValue.Value = values[j];
                document.ExecuteNonQuery();
            }

            commit.ExecuteNonQuery();
        }

        return watch.Elapsed.TotalSeconds;
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        return command;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = Prepare(connection, sql);
        command.ExecuteNonQuery();
    }
}
