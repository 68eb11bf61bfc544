using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>
/// Where adapter files come from, one implementation per URI scheme (local paths, <c>s3://</c>; a Hugging Face Hub or
/// HTTP source plugs in the same way). A source turns a URI into a local folder the PEFT reader can open.
/// </summary>
internal interface IAdapterSource
{
    /// <summary>True when this source serves <paramref name="uri"/>.</summary>
    bool Handles(string uri);

    /// <summary>Fetches the adapter at registration: its local folder and content version.</summary>
    Task<(string Folder, string Version)> FetchAsync(string uri, string adapter, CancellationToken cancellationToken);

    /// <summary>The local folder holding <paramref name="record"/>'s version, fetching it again if needed (verified against the version).</summary>
    string EnsureLocal(AdapterRecord record);
}
