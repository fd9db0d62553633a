using System.Text.Json;

namespace Converge.Server.Http;

/// <summary>A message that is JSON but not the protocol's message, with what is wrong in the protocol's words.</summary>
/// <remarks>
/// Its message goes to the caller as it is. Any other <see cref="JsonException"/> comes from System.Text.Json, whose
/// messages name .NET types and paths, and is answered in words of the server's own.
/// </remarks>
internal sealed class MalformedMessageException(string message) : JsonException(message);
