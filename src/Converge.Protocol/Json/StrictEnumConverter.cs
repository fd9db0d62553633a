using System.Text.Json.Serialization;

namespace Converge.Protocol.Json;

/// <summary>Reads and writes an enum as its documented lowercase name only; numbers are refused, so <c>"op": 1</c> is not a patch.</summary>
/// <typeparam name="TEnum">The enum.</typeparam>
public sealed class StrictEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(namingPolicy: null, allowIntegerValues: false)
    where TEnum : struct, Enum;
