using System.Security.Cryptography;
using System.Text;
using Serving.Authoring.Synthetic;

namespace Serving.Bench;

/// <summary>
/// The model a benchmark runs on, and the adapters it derives from it. A folder named with <c>--model</c> is input and
/// is only read; the bench-preset model (random weights, float32 on disk) and every derived adapter set are generated
/// into the bench's own cache folder, never beside or inside the model.
/// </summary>
internal static class BenchModel
{
    /// <summary>The bench's cache folder: <c>$XDG_CACHE_HOME/serving/bench</c> or <c>~/.cache/serving/bench</c>.</summary>
    public static string CacheRoot => Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "serving", "bench");

    /// <summary>
    /// The named model folder, checked to hold a model; or, when none is named, the bench-preset model in the cache,
    /// generated on first use.
    /// </summary>
    /// <exception cref="ArgumentException">The named folder holds no <c>config.json</c>.</exception>
    public static string Ensure(string? dir)
    {
        if (dir is not null)
        {
            if (!File.Exists(Path.Combine(dir, "config.json")))
                throw new ArgumentException($"--model {dir}: not a model folder (no config.json); the bench only reads the folder it is given");
            return dir;
        }

        string preset = Path.Combine(CacheRoot, "bench-model");
        if (GeneratedFolder.Ensure(preset, staging => SyntheticModelWriter.Write(staging, new SyntheticModelSpec { Preset = ModelPreset.Bench, Seed = 1 })))
            Console.Error.WriteLine($"generated the bench preset model into {preset}");
        return preset;
    }

    /// <summary>
    /// A folder of files derived from <paramref name="modelDir"/> (synthetic adapters of its shape), generated once
    /// into the cache under a key of the model's full path and its config, so a different model never reuses it.
    /// </summary>
    /// <param name="modelDir">The model the files are made for; only read.</param>
    /// <param name="name">The derived set's name, e.g. <c>adapters-8</c>.</param>
    /// <param name="generate">Writes the set into the staging folder it is given.</param>
    public static string Derived(string modelDir, string name, Action<string> generate)
    {
        string full = Path.GetFullPath(modelDir);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(full + "\n" + File.ReadAllText(Path.Combine(full, "config.json")))))[..16];
        string dir = Path.Combine(CacheRoot, "derived", key, name);
        Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
        GeneratedFolder.Ensure(dir, generate);
        return dir;
    }
}
