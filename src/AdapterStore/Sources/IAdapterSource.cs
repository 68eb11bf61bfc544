using Serving.AdapterStore.Files;
using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>
/// Where adapter files come from, one implementation per URI scheme (local paths, <c>s3://</c>; a Hugging Face Hub or
/// HTTP source plugs in the same way). Every read goes through <see cref="AdapterFileReader"/> under the caller's
/// <see cref="AdapterReadPolicy"/>, and the version is the hash of the bytes read. The caller owns the
/// <see cref="AdapterFiles"/> returned and disposes it once parsed.
/// </summary>
public interface IAdapterSource
{
    /// <summary>True when this source serves <paramref name="uri"/>.</summary>
    bool Handles(string uri);

    /// <summary>Fetches the adapter at registration: its files as read, and so its content version.</summary>
    Task<AdapterFiles> FetchAsync(string uri, string adapter, AdapterReadPolicy policy, CancellationToken cancellationToken);

    /// <summary>
    /// <paramref name="record"/>'s files as they are now (a tier reload). A local folder changed in place gives another
    /// version than the record's; a remote source fetches again when its cache lost the version, and refuses other content.
    /// </summary>
    AdapterFiles Load(AdapterRecord record, AdapterReadPolicy policy, CancellationToken cancellationToken);

    /// <summary>The local folder holding <paramref name="record"/>'s files (fetched again if needed), for reading its other files.</summary>
    string EnsureLocal(AdapterRecord record);
}
