using System.Text.Json.Serialization;

namespace Converge.Client.Storage;

/// <summary>Generated metadata for the scalars the client serializes itself, so it needs no reflection.</summary>
[JsonSerializable(typeof(string))]
internal sealed partial class ScalarJson : JsonSerializerContext;
