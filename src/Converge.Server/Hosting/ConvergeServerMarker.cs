using Converge.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Converge.Server.Hosting;

/// <summary>Marks a service collection that <c>AddConvergeServer</c> has set up, so a second call adds only configuration; and tells whether the server ends up on its embedded store.</summary>
/// <param name="services">The collection, kept so the store is decided from the registrations as they are when the host is built, in whatever order they came.</param>
/// <param name="embeddedStore">The registration of the embedded SQLite store, when no store was registered before <c>AddConvergeServer</c>.</param>
internal sealed class ConvergeServerMarker(IServiceCollection services, ServiceDescriptor? embeddedStore)
{
    /// <summary>Gets whether the server's store is the embedded SQLite store: no other <see cref="ISyncStore"/> was registered, before or after <c>AddConvergeServer</c>.</summary>
    /// <remarks>The last registration of a service is the one resolved, so a store registered after the embedded one replaces it.</remarks>
    public bool UsesEmbeddedStore =>
        embeddedStore is not null && ReferenceEquals(services.LastOrDefault(d => d.ServiceType == typeof(ISyncStore) && !d.IsKeyedService), embeddedStore);
}
