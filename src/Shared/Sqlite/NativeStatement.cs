using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Converge.Sqlite;

/// <summary>A statement of the write connection, prepared once and run straight on SQLite.</summary>
/// <remarks>
/// The stores' hot statements run once or more per document, so they skip Microsoft.Data.Sqlite's command layer (a
/// reader object, parameters looked up by name and bound through a type switch on every run) and bind by position, text
/// as UTF-8, JSON as blobs straight from a buffer. Everything else goes through Microsoft.Data.Sqlite as usual. Not
/// thread-safe: the store's write lock serializes its use. Compiled into each package that needs it (src/Shared).
/// </remarks>
internal sealed class NativeStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly int[] _parameters;
    private byte[] _utf8 = new byte[1024];

    /// <summary>Prepares a statement.</summary>
    /// <param name="connection">The open connection.</param>
    /// <param name="sql">One SQL statement.</param>
    /// <param name="parameters">Its parameters' names; the bind methods take a position in this list.</param>
    public NativeStatement(SqliteConnection connection, string sql, params string[] parameters)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
        _parameters = new int[parameters.Length];
        for (var i = 0; i < parameters.Length; i++)
        {
            _parameters[i] = raw.sqlite3_bind_parameter_index(_statement, parameters[i]);
            if (_parameters[i] == 0)
            {
                _statement.Dispose();
                throw new ArgumentException($"The statement has no parameter {parameters[i]}: {sql}", nameof(parameters));
            }
        }
    }

    /// <summary>Binds text, as UTF-8; <see langword="null"/> binds SQL NULL.</summary>
    /// <param name="parameter">The parameter's position in the list given at creation.</param>
    /// <param name="value">The value.</param>
    /// <returns>This statement.</returns>
    public NativeStatement Text(int parameter, string? value)
    {
        var index = _parameters[parameter];
        if (value is null)
        {
            return Null(parameter);
        }

        var length = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (length > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(length, _utf8.Length * 2)];
        }

        // SQLite copies the bytes (SQLITE_TRANSIENT), so the buffer is free again at once.
        var written = Encoding.UTF8.GetBytes(value, _utf8);
        Check(raw.sqlite3_bind_text(_statement, index, _utf8.AsSpan(0, written)));
        return this;
    }

    /// <summary>Binds UTF-8 text.</summary>
    public NativeStatement Text(int parameter, ReadOnlySpan<byte> utf8)
    {
        Check(raw.sqlite3_bind_text(_statement, _parameters[parameter], utf8));
        return this;
    }

    /// <summary>Binds a blob; SQLite copies it.</summary>
    public NativeStatement Blob(int parameter, ReadOnlySpan<byte> value)
    {
        Check(raw.sqlite3_bind_blob(_statement, _parameters[parameter], value));
        return this;
    }

    public NativeStatement Int(int parameter, long value)
    {
        Check(raw.sqlite3_bind_int64(_statement, _parameters[parameter], value));
        return this;
    }

    public NativeStatement Null(int parameter)
    {
        Check(raw.sqlite3_bind_null(_statement, _parameters[parameter]));
        return this;
    }

    /// <summary>Runs a statement that returns no rows (or whose rows are not read).</summary>
    /// <returns>The number of rows it changed.</returns>
    public int Execute()
    {
        try
        {
            int rc;
            while ((rc = raw.sqlite3_step(_statement)) == raw.SQLITE_ROW)
            {
            }

            Check(rc, raw.SQLITE_DONE);
            return raw.sqlite3_changes(_db);
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    /// <summary>Runs a query; read its rows with <see cref="Rows.Next"/>, and dispose the result to reset the statement.</summary>
    public Rows Query() => new(this);

    public long Int64(int column) => raw.sqlite3_column_int64(_statement, column);

    public bool IsNull(int column) => raw.sqlite3_column_type(_statement, column) == raw.SQLITE_NULL;

    /// <summary>Gets a column's bytes, valid until the next step or reset.</summary>
    public ReadOnlySpan<byte> Bytes(int column) => raw.sqlite3_column_blob(_statement, column);

    public string? String(int column) =>
        raw.sqlite3_column_type(_statement, column) == raw.SQLITE_NULL ? null : Encoding.UTF8.GetString(raw.sqlite3_column_blob(_statement, column));

    public void Dispose() => _statement.Dispose();

    private bool Step()
    {
        var rc = raw.sqlite3_step(_statement);
        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        Check(rc, raw.SQLITE_DONE);
        return false;
    }

    private void Check(int rc, int expected = raw.SQLITE_OK)
    {
        if (rc != expected)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
            throw new SqliteException($"SQLite error {rc}.", rc);
        }
    }

    /// <summary>The rows of a running query; disposing resets the statement.</summary>
    internal readonly struct Rows(NativeStatement statement) : IDisposable
    {
        public bool Next() => statement.Step();

        public void Dispose() => raw.sqlite3_reset(statement._statement);
    }
}
