using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>The configured sources, chosen by URI scheme.</summary>
public sealed class AdapterSourceSet(IReadOnlyList<IAdapterSource> sources) : IDisposable
{
    /// <summary>Local paths only (before a model is loaded).</summary>
    public static AdapterSourceSet LocalOnly() => new([new LocalPathAdapterSource()]);

    /// <summary>Local paths and <c>s3://</c> with its disk cache under <paramref name="diskCache"/>.</summary>
    public static AdapterSourceSet Create(AdapterStoreOptions options, string diskCache) =>
        new([new LocalPathAdapterSource(), S3AdapterSource.Create(options.S3, diskCache, options.MaxAdapterBytes, options.DiskCacheBytes)]);

    public IAdapterSource? For(string uri) => sources.FirstOrDefault(s => s.Handles(uri));

    public string EnsureLocal(AdapterRecord record) => SourceOf(record).EnsureLocal(record);

    /// <summary><paramref name="record"/>'s files as they are now, under <paramref name="policy"/>.</summary>
    public Files.AdapterFiles Load(AdapterRecord record, Files.AdapterReadPolicy policy, CancellationToken ct) => SourceOf(record).Load(record, policy, ct);

    private IAdapterSource SourceOf(AdapterRecord record) =>
        For(record.Source) ?? throw new InvalidOperationException($"no source handles '{record.Source}'");

    /// <summary>Whether <paramref name="record"/>'s files are on local disk now (always, for local folders).</summary>
    public bool IsOnDisk(AdapterRecord record) => For(record.Source) is not S3AdapterSource s3 || s3.IsOnDisk(record);

    /// <summary>The S3-compatible source, when one is configured.</summary>
    public S3AdapterSource? S3 => sources.OfType<S3AdapterSource>().FirstOrDefault();

    /// <summary>The S3 source's circuit state, when one is configured.</summary>
    public Polly.CircuitBreaker.CircuitState? S3BreakerState => sources.OfType<S3AdapterSource>().FirstOrDefault()?.BreakerState;

    public void Dispose()
    {
        foreach (var s in sources.OfType<IDisposable>())
            s.Dispose();
    }
}
