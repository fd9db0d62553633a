namespace Converge.Work.Storage;

/// <summary>Constraint requirements as bits, so the due query can filter with one AND.</summary>
[Flags]
internal enum ConstraintBits
{
    None = 0,
    NetworkConnected = 1,
    NetworkUnmetered = 2,
    NetworkNotRoaming = 4,
    NetworkMetered = 8,
    Charging = 16,
    BatteryNotLow = 32,
    StorageNotLow = 64,
    DeviceIdle = 128,
}
