using Serving.Engine.Synthetic;

namespace Serving.Bench;

/// <summary>The bench-preset model (random weights, float32 on disk), generated once into a cache folder.</summary>
internal static class BenchModel
{
    public static string Ensure(string? dir)
    {
        dir ??= Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "serving", "bench-model");
        if (File.Exists(Path.Combine(dir, ".complete")))
            return dir;
        Console.Error.WriteLine($"generating the bench preset model into {dir} ...");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Preset = ModelPreset.Bench, Seed = 1 });
        File.WriteAllText(Path.Combine(dir, ".complete"), "");
        return dir;
    }
}
