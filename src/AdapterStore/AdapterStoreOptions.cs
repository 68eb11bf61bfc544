namespace Serving.AdapterStore;

/// <summary><c>Serving:Adapters</c>: where adapters come from and how many the device holds. Command line: <c>--adapters DIR</c>.</summary>
public sealed class AdapterStoreOptions
{
    public const string Section = "Serving:Adapters";

    /// <summary>Local store root: one sub-folder per adapter (PEFT layout), the folder name is the adapter id.</summary>
    public string? Path { get; set; }

    /// <summary>Adapters registered at start-up (vLLM's <c>--lora-modules</c>), besides the store's folders.</summary>
    public List<StartupAdapterOptions> Modules { get; set; } = [];

    /// <summary>Adapters resident in the engine's slot arenas at once.</summary>
    public int MaxDeviceSlots { get; set; } = 8;

    /// <summary>Largest LoRA rank accepted (the arenas are preallocated at this rank, so it sets their memory).</summary>
    public int MaxRank { get; set; } = 16;

    /// <summary>
    /// Device memory, in MiB, that the slots of a mixture of experts' experts may take together. An expert projection's
    /// slots (<see cref="MaxDeviceSlots"/> × <see cref="MaxRank"/> × its in + out) are made while some loaded adapter adapts
    /// it and freed when none does; an adapter that would need more is refused (a 422 naming this setting), so one
    /// tenant's adapter of every expert of every layer cannot take the device's memory. 0: expert adapters are refused.
    /// </summary>
    public int MaxExpertSlotMiB { get; set; } = 1024;

    /// <summary>
    /// Run-time registrations one tenant's user keys may hold at once (replacing one of its own does not count); 0: no
    /// limit. Every registration rewrites the persisted registry and lengthens every listing, so without a bound one
    /// tenant registering names by the thousand slows registration and listing for all.
    /// </summary>
    public int MaxPerTenant { get; set; } = 256;

    /// <summary>Where run-time registrations (<c>load_lora_adapter</c>) are persisted; default: in the cache folder, per model.</summary>
    public string? RegistryPath { get; set; }

    /// <summary>Host-memory tier budget for parsed adapters, in bytes.</summary>
    public long HostCacheBytes { get; set; } = 2L << 30;

    /// <summary>S3-compatible object storage for <c>s3://bucket/prefix</c> adapter sources.</summary>
    public S3SourceOptions S3 { get; set; } = new();

    /// <summary>Local disk cache for adapters fetched from remote sources; default: the server's cache folder.</summary>
    public string? DiskCachePath { get; set; }

    /// <summary>Disk cache budget in bytes; the least recently used adapter versions are deleted beyond it.</summary>
    public long DiskCacheBytes { get; set; } = 20L << 30;

    /// <summary>
    /// Budget in bytes for DoRA adapters' scales kept in the server's cache folder (<c>dora-scales/</c>), so a cold fill
    /// after a version's first reads them instead of taking the norms over every base weight again; the least recently
    /// used are deleted beyond it. 0: none are kept.
    /// </summary>
    public long DoraScaleCacheBytes { get; set; } = 1L << 30;

    /// <summary>
    /// A shared store every replica mirrors: <c>s3://bucket/prefix</c> whose sub-prefixes are adapters (the name is
    /// the id). New and changed ones are registered as shared adapters, removed ones unregistered, every
    /// <see cref="SyncIntervalSeconds"/>.
    /// </summary>
    public string? SyncFrom { get; set; }

    public double SyncIntervalSeconds { get; set; } = 30;

    /// <summary>Largest adapter_model.safetensors accepted, in bytes (checked from the file's status before it is read).</summary>
    public long MaxAdapterBytes { get; set; } = 512L << 20;

    /// <summary>Longest the reading of one adapter's local files may take (a stalled network file system); past it 503.</summary>
    public double MaxReadSeconds { get; set; } = 60;

    public TimeSpan ReadTimeout => TimeSpan.FromSeconds(MaxReadSeconds);
}
