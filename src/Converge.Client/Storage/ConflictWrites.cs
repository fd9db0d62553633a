using Converge.Protocol.Messages;

namespace Converge.Client.Storage;

/// <summary>A stored conflict row.</summary>
internal sealed record ConflictRow(ConflictRecord Record, bool Resolving);

/// <summary>The writes of a transaction to the conflict inbox.</summary>
internal sealed class ConflictWrites(StoreStatements sql)
{
    public ConflictRow? Get(string id)
    {
        var statement = sql.GetConflict.Text(0, id);
        using var rows = statement.Query();
        return rows.Next() ? new ConflictRow(StoreJson.DeserializeConflict(statement.String(0)!), statement.String(1) == "resolving") : null;
    }

    /// <summary>Stores a conflict record; <paramref name="json"/>, when given, is the record's JSON as received, kept as it is.</summary>
    public void Put(ConflictRecord record, bool resolving, ReadOnlySpan<byte> json = default)
    {
        var statement = sql.PutConflict
            .Text(0, record.Id)
            .Text(1, record.Scope)
            .Text(2, record.Collection)
            .Text(3, record.DocumentId)
            .Int(4, record.Revision)
            .Text(5, resolving ? "resolving" : "open");
        if (json.IsEmpty)
        {
            statement.Text(6, StoreJson.Serialize(record));
        }
        else
        {
            statement.Text(6, json);
        }

        statement.Execute();
    }

    public void SetResolving(string id, bool resolving) =>
        sql.SetConflictStatus.Text(0, id).Text(1, resolving ? "resolving" : "open").Execute();

    public bool Delete(string id) => sql.DeleteConflict.Text(0, id).Execute() > 0;

    /// <summary>Drops a scope's conflict records that no pending resolution refers to; returns their ids.</summary>
    public List<string> DropSettled(string scope)
    {
        var ids = new List<string>();
        var statement = sql.DropSettledConflicts.Text(0, scope);
        using var rows = statement.Query();
        while (rows.Next())
        {
            ids.Add(statement.String(0)!);
        }

        return ids;
    }
}
