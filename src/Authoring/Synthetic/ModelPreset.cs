namespace Serving.Authoring.Synthetic;

/// <summary>Shapes of the generated test models (DEVELOPERS.md): tiny for exact-match tests, bench for benchmarks.</summary>
public sealed record ModelPreset(string Name, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads, int? Vocab, int MaxPositions)
{
    public static readonly ModelPreset Tiny = new("tiny", 64, 176, 2, 4, 2, null, 2048);
    public static readonly ModelPreset Bench = new("bench", 1024, 2816, 8, 16, 4, 32000, 4096);

    public static ModelPreset Parse(string name) => name switch
    {
        "tiny" => Tiny,
        "bench" => Bench,
        _ => throw new ArgumentException($"unknown preset '{name}' (expected tiny or bench)"),
    };
}
