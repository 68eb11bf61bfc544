namespace Serving.AdapterStore.Files;

/// <summary>
/// An adapter's files could not be read under the caller's <see cref="AdapterReadPolicy"/>. The message never holds bytes
/// of the file, numbers decoded from them, or whether a path outside the caller's roots exists; the API layer names the
/// caller's own path beside it.
/// </summary>
internal sealed class AdapterFileException(AdapterFileProblem problem, string? file, string message) : Exception(message)
{
    public AdapterFileProblem Problem { get; } = problem;

    /// <summary>adapter_config.json or adapter_model.safetensors; null when the folder itself is the problem.</summary>
    public string? File { get; } = file;
}
