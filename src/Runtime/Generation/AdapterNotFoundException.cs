namespace Serving.Runtime.Generation;

/// <summary>A request names an adapter the store does not have (HTTP 404).</summary>
internal sealed class AdapterNotFoundException(string id) : Exception($"The adapter '{id}' does not exist.");
