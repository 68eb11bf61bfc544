using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>Adapters registered by a local folder path: the files are used in place; the version is their content hash.</summary>
internal sealed class LocalPathAdapterSource : IAdapterSource
{
    public bool Handles(string uri) => !uri.Contains("://", StringComparison.Ordinal) || uri.StartsWith("file://", StringComparison.Ordinal);

    public Task<(string Folder, string Version)> FetchAsync(string uri, string adapter, CancellationToken cancellationToken)
    {
        string folder = Path.GetFullPath(uri.StartsWith("file://", StringComparison.Ordinal) ? new Uri(uri).LocalPath : uri);
        if (!Directory.Exists(folder))
            throw new FileNotFoundException($"adapter folder '{uri}' does not exist");
        foreach (string file in (string[])[PeftLoraConfig.FileName, PeftAdapterReader.WeightsFile])
        {
            if (!File.Exists(Path.Combine(folder, file)))
                throw new FileNotFoundException($"adapter folder '{uri}' has no {file}");
        }

        return Task.FromResult((folder, AdapterContentHash.Compute(folder)));
    }

    public string EnsureLocal(AdapterRecord record) => record.Source;
}
