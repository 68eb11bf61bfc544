using Serving.Engine.Synthetic;

namespace Serving.Server.Hosting;

/// <summary>
/// The demo adapters served with the demo model (random weights, generated deterministically on first start):
/// different ranks and target modules, so mixed batches exercise the multi-LoRA path.
/// </summary>
internal static class DemoAdapters
{
    public static readonly IReadOnlyList<(string Id, int Rank, double Alpha, string[] Targets, ulong Seed)> All =
    [
        ("demo-all-r8", 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 101),
        ("demo-attn-r16", 16, 16, ["q_proj", "v_proj"], 102),
        ("demo-mlp-r4", 4, 8, ["gate_proj", "up_proj", "down_proj"], 103),
    ];

    /// <summary>Returns the store root holding the demo adapters for <paramref name="modelDir"/>, generating them if needed.</summary>
    public static string Ensure(string cacheRoot, string modelDir)
    {
        string root = Path.Combine(cacheRoot, DemoModel.Name + "-adapters");
        GeneratedFolder.Ensure(root, staging =>
        {
            foreach (var (id, rank, alpha, targets, seed) in All)
                SyntheticAdapterWriter.Write(Path.Combine(staging, id), modelDir, rank, alpha, targets, seed);
        });
        return root;
    }
}
