using Converge.Tests.Shared;

namespace Converge.Work.Tests.Engine;

/// <summary>
/// The work store contract: every engine test class derives from this and runs once per store, against a SQLite file
/// and against PostgreSQL (a fresh schema per test), so both stores are held to the same behaviour.
/// </summary>
public abstract class StoreContract
{
    /// <summary>Configures the options for the store under test; a fresh, empty store each call.</summary>
    protected abstract Task<Action<WorkManagerOptions>?> StoreAsync();

    /// <summary>Gets whether the store is shared by several nodes (PostgreSQL), where a few rules differ on purpose.</summary>
    protected virtual bool IsShared => false;

    internal static Action<WorkManagerOptions>? Compose(Action<WorkManagerOptions>? store, Action<WorkManagerOptions>? configure) =>
        store is null ? configure : o =>
        {
            store(o);
            configure?.Invoke(o);
        };
}

/// <summary>The stores the contract runs against.</summary>
internal static class Stores
{
    private static readonly Lazy<Task<string>> s_database = new(async () => await (await PostgresServer.GetAsync()).CreateDatabaseAsync());
    private static int s_schemas;

    /// <summary>The SQLite file the test host makes: nothing to configure.</summary>
    public static Task<Action<WorkManagerOptions>?> Sqlite() => Task.FromResult<Action<WorkManagerOptions>?>(null);

    /// <summary>A fresh schema in this test run's PostgreSQL database.</summary>
    public static async Task<Action<WorkManagerOptions>?> PostgreSqlAsync()
    {
        var connectionString = await s_database.Value;
        var schema = $"contract_{Interlocked.Increment(ref s_schemas)}";
        return o => o.UsePostgreSql(connectionString, s => s.Schema = schema);
    }

    /// <summary>The connection string of this test run's PostgreSQL database.</summary>
    public static Task<string> PostgreSqlDatabaseAsync() => s_database.Value;

    /// <summary>A schema name no other test uses.</summary>
    public static string NewSchema(string prefix) => $"{prefix}_{Interlocked.Increment(ref s_schemas)}";
}

#pragma warning disable SA1402 // one line per store and class: the contract's whole matrix in one place
public sealed class ChainTestsOnSqlite : ChainTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class ChainTestsOnPostgreSql : ChainTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class ConstraintAndTimeoutTestsOnSqlite : ConstraintAndTimeoutTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class ConstraintAndTimeoutTestsOnPostgreSql : ConstraintAndTimeoutTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class ObservationTestsOnSqlite : ObservationTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class ObservationTestsOnPostgreSql : ObservationTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class OneTimeWorkTestsOnSqlite : OneTimeWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class OneTimeWorkTestsOnPostgreSql : OneTimeWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class PeriodicWorkTestsOnSqlite : PeriodicWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class PeriodicWorkTestsOnPostgreSql : PeriodicWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class RobustnessTestsOnSqlite : RobustnessTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class RobustnessTestsOnPostgreSql : RobustnessTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
public sealed class UniqueWorkTestsOnSqlite : UniqueWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.Sqlite(); }
public sealed class UniqueWorkTestsOnPostgreSql : UniqueWorkTests { protected override Task<Action<WorkManagerOptions>?> StoreAsync() => Stores.PostgreSqlAsync(); protected override bool IsShared => true; }
#pragma warning restore SA1402
