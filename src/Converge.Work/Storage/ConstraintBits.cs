using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>Constraint requirements as bits, so a due query can filter with one AND: a work item is left out when its bits and the unmet bits meet.</summary>
[Flags]
[Experimental(WorkStoreContract.DiagnosticId)]
public enum ConstraintBits
{
    /// <summary>No requirement.</summary>
    None = 0,

    /// <summary>A network connection.</summary>
    NetworkConnected = 1,

    /// <summary>An unmetered network.</summary>
    NetworkUnmetered = 2,

    /// <summary>A network that is not roaming.</summary>
    NetworkNotRoaming = 4,

    /// <summary>A metered network.</summary>
    NetworkMetered = 8,

    /// <summary>The device charges.</summary>
    Charging = 16,

    /// <summary>The battery is not low.</summary>
    BatteryNotLow = 32,

    /// <summary>Storage is not low.</summary>
    StorageNotLow = 64,

    /// <summary>The device is idle.</summary>
    DeviceIdle = 128,
}
