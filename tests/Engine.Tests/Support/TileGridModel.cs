using Serving.Authoring.Synthetic;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// A model as small as the tiny preset but with every projection input on the AMX 32-column grid (hidden 128, 4 heads of
/// 32, intermediate 256), the shapes real checkpoints have: in bf16 on an AMX machine its decode steps take
/// <c>CpuDecodePath</c>, which the tiny preset's intermediate size of 176 keeps it from.
/// </summary>
internal static class TileGridModel
{
    public static readonly ModelPreset Preset = new("tile-grid", 128, 256, 2, 4, 2, 4096, 2048);

    public static SyntheticModelSpec Spec(ulong seed) => new() { Preset = Preset, Seed = seed, Vocab = 4096 };

    /// <summary><paramref name="dir"/>, the model of <paramref name="spec"/> written there by the first test of a class that asks.</summary>
    public static string Ensure(string dir, SyntheticModelSpec spec)
    {
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, spec);
        return dir;
    }
}
