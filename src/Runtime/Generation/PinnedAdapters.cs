using Serving.AdapterStore.Registry;
using Serving.Contracts;

namespace Serving.Runtime.Generation;

/// <summary>
/// The adapters a request runs with, resolved once when it arrives: the mix, and for each of its entries the registration
/// (id, version, source) its name resolved to then. The engine loop binds device slots from these records and never
/// resolves a name again, so no file-system check runs on the loop's thread, and a hot swap after arrival does not change
/// the request, even when it is preempted and resumes.
/// </summary>
public sealed class PinnedAdapters
{
    /// <summary>The base model alone.</summary>
    public static readonly PinnedAdapters None = new(AdapterMix.None, []);

    /// <param name="mix">Adapters and weights.</param>
    /// <param name="records">A record for every adapter of <paramref name="mix"/>, in any order.</param>
    public PinnedAdapters(AdapterMix mix, IEnumerable<AdapterRecord> records)
    {
        var byId = records.ToDictionary(r => r.Id);
        Mix = mix;
        Records = mix.Entries.Select(e => byId.TryGetValue(e.Id, out var r) ? r : throw new ArgumentException($"no record pins adapter '{e.Id}' of the mix")).ToArray();
    }

    public AdapterMix Mix { get; }

    /// <summary>One record per entry of <see cref="Mix"/>, in the same order.</summary>
    public IReadOnlyList<AdapterRecord> Records { get; }

    /// <summary>The pinned versions, in the order of <see cref="Mix"/>'s entries.</summary>
    public IEnumerable<AdapterVersionKey> Versions => Records.Select(r => new AdapterVersionKey(r.Id, r.Version));

    public override string ToString() => Mix.ToString();
}
