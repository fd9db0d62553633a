using System.Diagnostics.CodeAnalysis;

namespace Converge.Server.Storage;

/// <summary>The key of a document: scope, collection and id.</summary>
/// <param name="Scope">The scope.</param>
/// <param name="Collection">The collection.</param>
/// <param name="Id">The document's id.</param>
[Experimental(SyncStoreContract.DiagnosticId)]
public readonly record struct DocumentKey(string Scope, string Collection, string Id);
