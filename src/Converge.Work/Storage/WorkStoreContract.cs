using System.Diagnostics.CodeAnalysis;

namespace Converge.Work.Storage;

/// <summary>The version of the store contract: what a store package must implement to work with this Converge.Work.</summary>
/// <remarks>
/// <para>
/// Implementing a store is supported, but the contract (<see cref="IWorkStore"/> and the types it takes and returns)
/// may change in minor versions; every type of it is marked experimental under <see cref="DiagnosticId"/>. Each change
/// raises <see cref="Version"/>.
/// </para>
/// <para>
/// A store package states the version it was built for through <see cref="IWorkStoreProvider.ContractVersion"/>, and
/// <see cref="WorkManager"/> compares it with its own before it opens the store: a store package and a Converge.Work
/// made for different versions fail at start, with a message that names the packages to update, rather than later with
/// a missing method. <see cref="IWorkStoreProvider"/> and this class keep their shape across versions, so that check
/// itself always runs.
/// </para>
/// </remarks>
[Experimental(DiagnosticId)]
public static class WorkStoreContract
{
    /// <summary>The diagnostic that marks the store contract as experimental: suppress it in a project that implements a store.</summary>
    public const string DiagnosticId = "CONVERGE0001";

    /// <summary>The version of the store contract this Converge.Work implements.</summary>
    /// <remarks>A constant, so a store package that returns it from <see cref="IWorkStoreProvider.ContractVersion"/> states the version it was compiled against.</remarks>
    public const int Version = 1;

    /// <summary>
    /// Throws unless a package built against version <paramref name="builtFor"/> of the contract can use this Converge.Work.
    /// A package that uses the contract (a store, or a test driver) calls it with <see cref="Version"/> as it was when the
    /// package was compiled, before its first other call into the contract.
    /// </summary>
    /// <param name="builtFor">The contract version the package was compiled against: pass <see cref="Version"/>.</param>
    /// <param name="package">The package's assembly, named in the message.</param>
    /// <exception cref="InvalidOperationException">The versions differ; the message names the package to update.</exception>
    public static void ThrowIfUnsupported(int builtFor, System.Reflection.Assembly package)
    {
        ArgumentNullException.ThrowIfNull(package);
        if (builtFor == Version)
        {
            return;
        }

        var other = package.GetName();
        var work = typeof(WorkManager).Assembly.GetName();
        var update = builtFor < Version
            ? $"Update {other.Name} to the release that matches {work.Name} {work.Version}."
            : $"Update {work.Name} to the release that matches {other.Name} {other.Version}.";
        throw new InvalidOperationException(
            $"The package {other.Name} {other.Version} uses version {builtFor} of the work store contract, " +
            $"but {work.Name} {work.Version} implements version {Version}. {update} " +
            "Converge.Work and the packages that build on its store contract are released together: use the same version of each.");
    }
}
