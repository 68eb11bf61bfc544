using System.Text.Json;
using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Contracts;
using Serving.Engine.Model;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Demo;

/// <summary>
/// The demo adapters served with the demo model, generated deterministically on first start:
/// three with random weights and different ranks and target modules (mixed batches exercise the multi-LoRA path), and
/// three trained on small synthetic domains with the train-adapter trainer, so their outputs visibly differ from the
/// base model's and <c>model: "auto"</c> has something to find: <c>demo-clinical</c> (a clinical-note format),
/// <c>demo-toylang</c> (toy language → English), <c>demo-digits</c> (reverse a digit string). Each trained one ships
/// its training data (<c>train.jsonl</c>) and routing examples.
/// </summary>
public static class DemoAdapters
{
    public static readonly IReadOnlyList<(string Id, int Rank, double Alpha, string[] Targets, ulong Seed)> All =
    [
        ("demo-all-r8", 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 101),
        ("demo-attn-r16", 16, 16, ["q_proj", "v_proj"], 102),
        ("demo-mlp-r4", 4, 8, ["gate_proj", "up_proj", "down_proj"], 103),
    ];

    /// <summary>Trained demo adapters: id and the synthetic domain it learned.</summary>
    public static readonly IReadOnlyList<(string Id, string Domain)> Trained =
        [("demo-clinical", "clinical"), ("demo-toylang", "toylang"), ("demo-digits", "digits")];

    /// <summary>The store root's folder name under the cache directory (versioned: a new demo set never reuses an old folder).</summary>
    public const string FolderName = DemoModel.Name + "-adapters-v2";

    /// <summary>Returns the store root holding the demo adapters for <paramref name="modelDir"/>, generating them if needed.</summary>
    public static string Ensure(string cacheRoot, string modelDir)
    {
        string root = Path.Combine(cacheRoot, FolderName);
        GeneratedFolder.Ensure(root, staging =>
        {
            foreach (var (id, rank, alpha, targets, seed) in All)
                SyntheticAdapterWriter.Write(Path.Combine(staging, id), modelDir, rank, alpha, targets, seed);
            using var model = LoadedModel.Load(modelDir, TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU, 512);
            var random = new SeededRandom(2026);
            foreach (var (id, domain) in Trained)
            {
                string folder = Path.Combine(staging, id);
                var pairs = SyntheticDomains.TrainAdapter(model, domain, random, 96, new LoraTrainingOptions
                {
                    Rank = 8, Alpha = 16, Targets = SyntheticAdapterWriter.AllTargets, Steps = 80, BatchSize = 8, LearningRate = 5e-3, Seed = 7,
                }, folder);
                File.WriteAllLines(Path.Combine(folder, "train.jsonl"), pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Completion })));
                File.WriteAllLines(Path.Combine(folder, AdapterFileNames.RoutingExamples), pairs.Take(16).Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt })));
            }
        });
        return root;
    }
}
