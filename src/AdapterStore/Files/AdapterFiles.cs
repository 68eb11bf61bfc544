namespace Serving.AdapterStore.Files;

/// <summary>
/// One adapter's two files as read, whole, in one pass: the version is the hash of exactly these bytes, and the weights
/// are parsed from them, so what a version names is what was served. The weights' bytes live in a pooled buffer until
/// <see cref="Dispose"/>: fresh memory for every read of a multi-megabyte file costs a page fault per 4 KiB, which on a
/// virtual machine took longer than reading, hashing and parsing the file together. The version is hashed when first
/// asked for, so a reader can hash on one core while it parses on another.
/// </summary>
public sealed class AdapterFiles : IDisposable
{
    private byte[]? _weights;
    private readonly int _weightsLength;
    private readonly Lazy<string> _version;

    /// <param name="folder">The folder's real path (every link resolved).</param>
    /// <param name="config">adapter_config.json's bytes.</param>
    /// <param name="weights">A buffer rented from <see cref="AdapterFileBuffers"/> whose first <paramref name="weightsLength"/>
    /// bytes are adapter_model.safetensors; this object returns it.</param>
    /// <param name="weightsLength">The weights file's length.</param>
    internal AdapterFiles(string folder, byte[] config, byte[] weights, int weightsLength)
        : this(folder, config, weights, weightsLength, null)
    {
    }

    private AdapterFiles(string folder, byte[] config, byte[] weights, int weightsLength, Lazy<string>? version)
    {
        Folder = folder;
        Config = config;
        _weights = weights;
        _weightsLength = weightsLength;
        _version = version ?? new Lazy<string>(() => Registry.AdapterContentHash.Compute(Config, Weights), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The folder's real path (every link resolved).</summary>
    public string Folder { get; }

    /// <summary>adapter_config.json's bytes.</summary>
    public byte[] Config { get; }

    /// <summary>The content version (<see cref="Registry.AdapterContentHash"/> of the two files), hashed on first use.</summary>
    /// <exception cref="ObjectDisposedException">Asked for the first time after the files were released.</exception>
    public string Version => _version.Value;

    /// <summary>adapter_model.safetensors's bytes, readable until <see cref="Dispose"/>.</summary>
    /// <exception cref="ObjectDisposedException">The files were disposed, or handed on by <see cref="MovedTo"/>.</exception>
    public ReadOnlySpan<byte> Weights =>
        (_weights ?? throw new ObjectDisposedException(nameof(AdapterFiles), $"the files of {Folder} were released")).AsSpan(0, _weightsLength);

    /// <summary>
    /// The same bytes and version under another folder (where a download was published); the buffer moves to the
    /// returned object, and this one is left released, so no two objects ever return one buffer.
    /// </summary>
    public AdapterFiles MovedTo(string folder)
    {
        _ = Version;   // hashed while this object still holds the bytes
        var weights = Interlocked.Exchange(ref _weights, null) ?? throw new ObjectDisposedException(nameof(AdapterFiles));
        return new AdapterFiles(folder, Config, weights, _weightsLength, _version);
    }

    /// <summary>Clears the weights' bytes (the buffer goes on to other adapters' reads) and returns the buffer (<see cref="AdapterFileBuffers"/>).</summary>
    public void Dispose()
    {
        var weights = Interlocked.Exchange(ref _weights, null);
        if (weights is null)
            return;
        AdapterFileBuffers.Return(weights, _weightsLength);
    }
}
