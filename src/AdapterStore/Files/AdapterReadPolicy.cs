namespace Serving.AdapterStore.Files;

/// <summary>
/// What <see cref="AdapterFileReader"/> may read for one caller: the folders every file must resolve into (after all
/// links; null = anywhere, for admins and the server's own caches), the largest weights file, and how long reading may
/// take. Roots are compared as resolved real paths, so a prefix that is itself reached through a link still matches.
/// </summary>
public sealed class AdapterReadPolicy
{
    /// <summary>adapter_config.json is a few hundred bytes; anything near this is not a PEFT config.</summary>
    public const long MaxConfigBytes = 1 << 20;

    private readonly string[]? _roots;

    private AdapterReadPolicy(string[]? roots, long maxWeightsBytes, TimeSpan timeout, bool singleLinkOnly)
    {
        _roots = roots;
        MaxWeightsBytes = maxWeightsBytes;
        Timeout = timeout;
        SingleLinkOnly = singleLinkOnly;
    }

    /// <summary>Largest adapter_model.safetensors, checked from the file's status before a byte is read.</summary>
    public long MaxWeightsBytes { get; }

    /// <summary>Longest the reading of one adapter may take.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Refuse files with more than one hard link: a tenant could otherwise link another owner's file into its folder.</summary>
    public bool SingleLinkOnly { get; }

    /// <summary>Whether files are confined to <see cref="Roots"/>.</summary>
    public bool IsConfined => _roots is not null;

    public IReadOnlyList<string> Roots => _roots ?? [];

    /// <summary>Anywhere the server process can read: admins' registrations, the server's own disk cache.</summary>
    public static AdapterReadPolicy Trusted(long maxWeightsBytes, TimeSpan timeout) => new(null, maxWeightsBytes, timeout, singleLinkOnly: false);

    /// <summary>
    /// Only inside <paramref name="roots"/> (local paths or <c>file://</c> URIs), each resolved to its real path when it
    /// exists. No roots means nothing may be read.
    /// </summary>
    public static AdapterReadPolicy ConfinedTo(IEnumerable<string> roots, long maxWeightsBytes, TimeSpan timeout) =>
        new(roots.Select(LocalAdapterPath.TryFromUri).OfType<string>().Select(r => (PosixFiles.RealPath(r) ?? r).TrimEnd('/')).Distinct().ToArray(),
            maxWeightsBytes, timeout, singleLinkOnly: true);

    /// <summary>Whether the resolved <paramref name="realPath"/> lies inside one of the roots.</summary>
    public bool Allows(string realPath) =>
        _roots is null || _roots.Any(root => realPath == root || realPath.StartsWith(root.Length == 0 || root == "/" ? "/" : root + "/", StringComparison.Ordinal));
}
