using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Converge.Client;

/// <summary>A document with its id, as a query returns it.</summary>
/// <typeparam name="T">The document type.</typeparam>
/// <param name="Id">The document's id.</param>
/// <param name="Value">The document's local value.</param>
public sealed record Document<T>(string Id, T Value);

/// <summary>One page of a query's results.</summary>
/// <typeparam name="T">The document type.</typeparam>
/// <param name="Items">The documents of the page, in the query's order.</param>
/// <param name="ContinuationToken">The token that continues after this page (<see cref="DocumentQuery{T}.After"/>); <see langword="null"/> on the last page.</param>
public sealed record QueryPage<T>(IReadOnlyList<Document<T>> Items, string? ContinuationToken);

/// <summary>A query of a collection's live documents (deleted ones never match): immutable, each method returns a refined copy.</summary>
/// <typeparam name="T">The document type.</typeparam>
/// <remarks>
/// <para>
/// Queries run on the local store with SQLite's <c>json_extract</c> over each document's local value, so they see the
/// application's own pending writes. Filters compare a top-level field with a scalar (string, number, boolean or null);
/// several filters must all match. Results are ordered by id, or by a field and then id; across types, SQLite's order
/// applies: missing and null first, then numbers (false and true as 0 and 1), then strings, then objects and arrays as
/// their JSON text.
/// </para>
/// <para>
/// Page with <see cref="Skip"/> and <see cref="Limit"/>, or, for long lists, with <see cref="QueryPage{T}.ContinuationToken"/>
/// and <see cref="After"/> (keyset paging: it resumes after the last document, whatever was written meanwhile, and
/// costs the same on every page). <see cref="DocumentCollection{T}.EnsureIndexAsync"/> makes a filter or order by a field fast.
/// </para>
/// </remarks>
public sealed class DocumentQuery<T>
{
    private readonly DocumentCollection<T> _collection;
    private readonly State _state;

    internal DocumentQuery(DocumentCollection<T> collection)
        : this(collection, new State(null, [], null, false, 0, null, null))
    {
    }

    private DocumentQuery(DocumentCollection<T> collection, State state)
    {
        _collection = collection;
        _state = state;
    }

    /// <summary>Keeps the documents whose id starts with <paramref name="prefix"/> (ordinal, case-sensitive).</summary>
    /// <param name="prefix">The prefix; empty matches every id.</param>
    /// <returns>The refined query.</returns>
    public DocumentQuery<T> WhereIdStartsWith(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return With(_state with { Prefix = prefix });
    }

    /// <summary>Keeps the documents whose top-level <paramref name="field"/> equals a string, or is JSON null when <paramref name="value"/> is <see langword="null"/>.</summary>
    /// <param name="field">The field.</param>
    /// <param name="value">The value.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid.</exception>
    public DocumentQuery<T> Where(string field, string? value) =>
        Where(field, value is null ? JsonNull : JsonSerializer.SerializeToElement(value, Storage.ScalarJson.Default.String));

    /// <summary>Keeps the documents whose top-level <paramref name="field"/> is a number equal to <paramref name="value"/>.</summary>
    /// <param name="field">The field.</param>
    /// <param name="value">The value.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid.</exception>
    public DocumentQuery<T> Where(string field, long value) => Where(field, Parse(value.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Keeps the documents whose top-level <paramref name="field"/> is a number equal to <paramref name="value"/>.</summary>
    /// <param name="field">The field.</param>
    /// <param name="value">The value, a finite number.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid or the value is not finite.</exception>
    public DocumentQuery<T> Where(string field, double value)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentException("A number to compare must be finite.", nameof(value));
        }

        return Where(field, Parse(value.ToString("R", CultureInfo.InvariantCulture)));
    }

    /// <summary>Keeps the documents whose top-level <paramref name="field"/> is the boolean <paramref name="value"/>.</summary>
    /// <param name="field">The field.</param>
    /// <param name="value">The value.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid.</exception>
    public DocumentQuery<T> Where(string field, bool value) => Where(field, Parse(value ? "true" : "false"));

    /// <summary>Keeps the documents whose top-level <paramref name="field"/> equals a JSON scalar: a string, number, boolean or null of the same type.</summary>
    /// <param name="field">The field.</param>
    /// <param name="value">The value; objects and arrays cannot be compared.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid or the value is an object or array.</exception>
    public DocumentQuery<T> Where(string field, JsonElement value)
    {
        DocumentCollection<T>.CheckQueryField(_collection.Client, field, nameof(field));
        if (value.ValueKind is not (JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
        {
            throw new ArgumentException($"A filter compares a field with a string, number, boolean or null, not {value.ValueKind}.", nameof(value));
        }

        return With(_state with { Filters = [.. _state.Filters, (field, value.Clone())] });
    }

    /// <summary>Orders the results by id (the default order).</summary>
    /// <param name="descending">Whether to order from the largest id.</param>
    /// <returns>The refined query.</returns>
    public DocumentQuery<T> OrderById(bool descending = false) => With(_state with { OrderField = null, Descending = descending });

    /// <summary>Orders the results by a top-level field, then by id in the same direction.</summary>
    /// <param name="field">The field.</param>
    /// <param name="descending">Whether to order from the largest value.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The field name is invalid.</exception>
    public DocumentQuery<T> OrderBy(string field, bool descending = false)
    {
        DocumentCollection<T>.CheckQueryField(_collection.Client, field, nameof(field));
        return With(_state with { OrderField = field, Descending = descending });
    }

    /// <summary>Skips the first <paramref name="count"/> results.</summary>
    /// <param name="count">How many to skip, 0 or more.</param>
    /// <returns>The refined query.</returns>
    public DocumentQuery<T> Skip(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return With(_state with { Skip = count });
    }

    /// <summary>Returns at most <paramref name="count"/> results.</summary>
    /// <param name="count">The most to return, 1 or more.</param>
    /// <returns>The refined query.</returns>
    public DocumentQuery<T> Limit(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        return With(_state with { Limit = count });
    }

    /// <summary>Continues after the last document of an earlier page of the same query (keyset paging).</summary>
    /// <param name="continuationToken">A <see cref="QueryPage{T}.ContinuationToken"/> of a query with the same order.</param>
    /// <returns>The refined query.</returns>
    /// <exception cref="ArgumentException">The token is not a continuation token.</exception>
    public DocumentQuery<T> After(string continuationToken) => With(_state with { After = Continuation.Parse(continuationToken) });

    /// <summary>Runs the query.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The matching documents' values, in order.</returns>
    /// <exception cref="ArgumentException">A continuation token came from a query with another order.</exception>
    public async Task<IReadOnlyList<T>> ToListAsync(CancellationToken cancellationToken = default)
    {
        var page = await ToPageAsync(cancellationToken).ConfigureAwait(false);
        return page.Items.Select(d => d.Value).ToList();
    }

    /// <summary>Runs the query and returns one page with a token to continue after it.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The page: up to <see cref="Limit"/> documents, with a continuation token when more follow.</returns>
    /// <exception cref="ArgumentException">A continuation token came from a query with another order.</exception>
    public Task<QueryPage<T>> ToPageAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var client = _collection.Client;
        client.ThrowIfDisposed();
        using var connection = client.Store.OpenRead();
        using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT id, local_value");
        var key = _state.OrderField is { } field ? DocumentCollection<T>.Extract(field) : null;
        if (key is not null)
        {
            sql.Append(", ").Append(key);
        }

        sql.Append(" FROM documents");
        AppendWhere(sql, command);
        AppendAfter(sql, command, key);
        var direction = _state.Descending ? " DESC" : " ASC";
        sql.Append(" ORDER BY ");
        if (key is not null)
        {
            sql.Append(key).Append(direction).Append(", ");
        }

        sql.Append("id").Append(direction);
        if (_state.Limit is not null || _state.Skip > 0)
        {
            sql.Append(" LIMIT $limit OFFSET $skip");
            // One more than asked tells whether another page follows.
            command.Parameters.AddWithValue("$limit", _state.Limit is { } limit ? limit + 1L : -1L);
            command.Parameters.AddWithValue("$skip", _state.Skip);
        }

        command.CommandText = sql.Append(';').ToString();
        var items = new List<Document<T>>();
        object? lastKey = null;
        var more = false;
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                if (_state.Limit is { } limit && items.Count == limit)
                {
                    more = true;
                    break;
                }

                var value = JsonSerializer.Deserialize(reader.GetString(1), _collection.TypeInfo)!;
                items.Add(new Document<T>(reader.GetString(0), value));
                lastKey = key is null ? null : reader.GetValue(2);
            }
        }

        var token = more ? new Continuation(_state.OrderField, _state.Descending, lastKey is DBNull ? null : lastKey, items[^1].Id).ToString() : null;
        return Task.FromResult(new QueryPage<T>(items, token));
    }

    /// <summary>Returns the first result, or <see langword="null"/> (default) when nothing matches.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The first matching document's value.</returns>
    public async Task<T?> FirstOrDefaultAsync(CancellationToken cancellationToken = default)
    {
        var page = await Limit(1).ToPageAsync(cancellationToken).ConfigureAwait(false);
        return page.Items.Count > 0 ? page.Items[0].Value : default;
    }

    /// <summary>Counts the documents that match the filters, ignoring order, paging and continuation.</summary>
    /// <param name="cancellationToken">Cancels the count.</param>
    /// <returns>The number of matching documents.</returns>
    public Task<long> CountAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var client = _collection.Client;
        client.ThrowIfDisposed();
        using var connection = client.Store.OpenRead();
        using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT COUNT(*) FROM documents");
        AppendWhere(sql, command);
        command.CommandText = sql.Append(';').ToString();
        return Task.FromResult(Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture));
    }

    /// <summary>Gets the SQL the query runs, for tests and query plans.</summary>
    internal string ExplainSql()
    {
        using var command = new SqliteCommand();
        var sql = new StringBuilder("SELECT id FROM documents");
        AppendWhere(sql, command);
        var key = _state.OrderField is { } field ? DocumentCollection<T>.Extract(field) : null;
        var direction = _state.Descending ? " DESC" : " ASC";
        sql.Append(" ORDER BY ");
        if (key is not null)
        {
            sql.Append(key).Append(direction).Append(", ");
        }

        return sql.Append("id").Append(direction).ToString();
    }

    private static readonly JsonElement JsonNull = Parse("null");

    private static JsonElement Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    private DocumentQuery<T> With(State state) => new(_collection, state);

    private void AppendWhere(StringBuilder sql, SqliteCommand command)
    {
        // The collection is a literal, not a parameter: SQLite uses a partial index only when the query names its literal.
        sql.Append(" WHERE scope = $scope AND collection = ").Append(DocumentCollection<T>.Literal(_collection.Name)).Append(" AND local_value IS NOT NULL");
        command.Parameters.AddWithValue("$scope", _collection.Scope);
        if (_state.Prefix is { Length: > 0 } prefix)
        {
            // A range on the primary key: every id that starts with the prefix sorts between it and the prefix followed by
            // byte F5, which no UTF-8 text holds.
            sql.Append(" AND id >= $prefix AND id < ($prefix || CAST(x'F5' AS TEXT))");
            command.Parameters.AddWithValue("$prefix", prefix);
        }

        for (var i = 0; i < _state.Filters.Length; i++)
        {
            var (field, value) = _state.Filters[i];
            var extract = DocumentCollection<T>.Extract(field);
            var type = DocumentCollection<T>.JsonType(field);
            var parameter = "$f" + i.ToString(CultureInfo.InvariantCulture);
            switch (value.ValueKind)
            {
                case JsonValueKind.Null:
                    sql.Append(" AND ").Append(type).Append(" = 'null'");
                    break;
                case JsonValueKind.True or JsonValueKind.False:
                    // json_extract gives 1 and 0 for booleans: compare on it (so an index applies), and check the type.
                    sql.Append(" AND ").Append(extract).Append(value.ValueKind == JsonValueKind.True ? " = 1 AND " : " = 0 AND ")
                        .Append(type).Append(value.ValueKind == JsonValueKind.True ? " = 'true'" : " = 'false'");
                    break;
                case JsonValueKind.Number:
                    sql.Append(" AND ").Append(extract).Append(" = ").Append(parameter).Append(" AND ").Append(type).Append(" IN ('integer', 'real')");
                    command.Parameters.AddWithValue(parameter, value.TryGetInt64(out var integer) ? integer : value.GetDouble());
                    break;
                default:
                    sql.Append(" AND ").Append(extract).Append(" = ").Append(parameter).Append(" AND ").Append(type).Append(" = 'text'");
                    command.Parameters.AddWithValue(parameter, value.GetString());
                    break;
            }
        }
    }

    private void AppendAfter(StringBuilder sql, SqliteCommand command, string? key)
    {
        if (_state.After is not { } after)
        {
            return;
        }

        if (after.Field != _state.OrderField || after.Descending != _state.Descending)
        {
            throw new ArgumentException("The continuation token comes from a query with another order.");
        }

        command.Parameters.AddWithValue("$afterId", after.Id);
        var (op, nullsFirst) = _state.Descending ? ("<", false) : (">", true);
        if (key is null)
        {
            sql.Append(" AND id ").Append(op).Append(" $afterId");
            return;
        }

        // NULL sorts first ascending and last descending; a NULL key compares with nothing, so it gets its own terms.
        if (after.Key is null)
        {
            sql.Append(nullsFirst
                ? $" AND (({key} IS NULL AND id > $afterId) OR {key} IS NOT NULL)"
                : $" AND ({key} IS NULL AND id < $afterId)");
        }
        else
        {
            command.Parameters.AddWithValue("$afterKey", after.Key);
            sql.Append(nullsFirst
                ? $" AND ({key} > $afterKey OR ({key} = $afterKey AND id > $afterId))"
                : $" AND ({key} < $afterKey OR {key} IS NULL OR ({key} = $afterKey AND id < $afterId))");
        }
    }

    private sealed record State(string? Prefix, (string Field, JsonElement Value)[] Filters, string? OrderField, bool Descending, int Skip, int? Limit, Continuation? After);

    /// <summary>Where a page ended: the order it was in, and the last document's sort key and id.</summary>
    private sealed record Continuation(string? Field, bool Descending, object? Key, string Id)
    {
        public static Continuation Parse(string token)
        {
            ArgumentException.ThrowIfNullOrEmpty(token);
            try
            {
                using var document = JsonDocument.Parse(Base64Url.DecodeFromChars(token));
                var root = document.RootElement;
                var field = root.GetProperty("f").GetString();
                var descending = root.GetProperty("d").GetBoolean();
                var id = root.GetProperty("i").GetString() ?? throw new FormatException();
                var key = root.GetProperty("k");
                object? value = key.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.String => key.GetString(),
                    JsonValueKind.Number when root.GetProperty("t").GetString() == "i" => key.GetInt64(),
                    JsonValueKind.Number => key.GetDouble(),
                    _ => throw new FormatException(),
                };
                return new Continuation(field, descending, value, id);
            }
            catch (Exception e) when (e is FormatException or JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new ArgumentException("This is not a continuation token of a Converge query.", nameof(token), e);
            }
        }

        public override string ToString()
        {
            var buffer = new ArrayBufferWriter<byte>(128);
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteString("f", Field);
                writer.WriteBoolean("d", Descending);
                writer.WriteString("i", Id);
                switch (Key)
                {
                    case long integer:
                        writer.WriteString("t", "i");
                        writer.WriteNumber("k", integer);
                        break;
                    case double real:
                        writer.WriteString("t", "r");
                        writer.WriteNumber("k", real);
                        break;
                    case string text:
                        writer.WriteString("t", "s");
                        writer.WriteString("k", text);
                        break;
                    default:
                        writer.WriteString("t", "n");
                        writer.WriteNull("k");
                        break;
                }

                writer.WriteEndObject();
            }

            return Base64Url.EncodeToString(buffer.WrittenSpan);
        }
    }
}
