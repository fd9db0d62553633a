namespace Converge.Server.Hosting;

/// <summary>Marks a service collection that <c>AddConvergeServer</c> has set up, so a second call adds only configuration.</summary>
internal sealed class ConvergeServerMarker;
