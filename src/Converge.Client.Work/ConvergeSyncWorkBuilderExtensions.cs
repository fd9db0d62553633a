using Converge.Client;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Converge's background sync with Converge.Work.</summary>
public static class ConvergeSyncWorkBuilderExtensions
{
    /// <summary>Registers <see cref="SyncWorker"/> under its stable name.</summary>
    /// <param name="builder">The work builder from <c>AddConvergeWork</c>.</param>
    /// <returns>The builder.</returns>
    /// <remarks>The worker takes the <see cref="ConvergeClient"/> registered in the container: open it at start and register it as a singleton.</remarks>
    public static ConvergeWorkBuilder AddConvergeSync(this ConvergeWorkBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddWorker<SyncWorker>(SyncWorker.Name);
    }
}
