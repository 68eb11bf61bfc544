using Serving.Authoring.Synthetic;

namespace Serving.Authoring.Demo;

/// <summary>
/// The embedded default: a tiny Llama-family model with random weights, generated deterministically into the cache
/// folder on first start (nothing is downloaded), through <see cref="GeneratedFolder"/>.
/// </summary>
public static class DemoModel
{
    public const string Name = "serving-demo-tiny";
    private const ulong Seed = 20261124;

    /// <summary>Returns the demo model folder, generating it if needed; <paramref name="generated"/> tells whether it was made now.</summary>
    public static string Ensure(string cacheRoot, out bool generated)
    {
        string dir = Path.Combine(cacheRoot, Name);
        generated = GeneratedFolder.Ensure(dir, staging => SyntheticModelWriter.Write(staging, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = Seed }));
        return dir;
    }
}
