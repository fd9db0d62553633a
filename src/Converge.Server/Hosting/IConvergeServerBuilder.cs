namespace Microsoft.Extensions.DependencyInjection;

/// <summary>The sync server's registration, as <c>AddConvergeServer</c> returns it, for the packages that extend it (a store, for example <c>UsePostgreSql</c>).</summary>
/// <remarks>Extensions may be called in any order, before or after other registrations of the app.</remarks>
public interface IConvergeServerBuilder
{
    /// <summary>Gets the services the server is registered with.</summary>
    IServiceCollection Services { get; }
}

/// <summary>The builder <c>AddConvergeServer</c> returns.</summary>
internal sealed class ConvergeServerBuilder(IServiceCollection services) : IConvergeServerBuilder
{
    public IServiceCollection Services { get; } = services;
}
