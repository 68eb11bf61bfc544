namespace Serving.AdapterStore.Files;

/// <summary>
/// One adapter's two files as read, whole, in one pass: the version is the hash of exactly these bytes, and the weights
/// are parsed from them, so what a version names is what was served.
/// </summary>
/// <param name="Folder">The folder's real path (every link resolved).</param>
/// <param name="Config">adapter_config.json's bytes.</param>
/// <param name="Weights">adapter_model.safetensors's bytes.</param>
/// <param name="Version">The content version (<see cref="Registry.AdapterContentHash"/> of the two).</param>
public sealed record AdapterFiles(string Folder, byte[] Config, byte[] Weights, string Version);
