using Serving.AdapterStore.Files;
using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>Adapters registered by a local folder path or <c>file://</c> URI: the files are used in place; the version is their content hash.</summary>
internal sealed class LocalPathAdapterSource : IAdapterSource
{
    public bool Handles(string uri) => LocalAdapterPath.IsLocal(uri);

    public Task<AdapterFiles> FetchAsync(string uri, string adapter, AdapterReadPolicy policy, CancellationToken cancellationToken)
    {
        string folder = LocalAdapterPath.TryFromUri(uri) ?? throw new ArgumentException($"'{uri}' is not a local folder path or file:// URI");
        return Task.FromResult(AdapterFileReader.Read(folder, policy, cancellationToken));
    }

    public AdapterFiles Load(AdapterRecord record, AdapterReadPolicy policy, CancellationToken cancellationToken) =>
        AdapterFileReader.Read(record.Source, policy, cancellationToken);

    public string EnsureLocal(AdapterRecord record) => record.Source;
}
