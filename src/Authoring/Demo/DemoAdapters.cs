using System.Text.Json;
using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Contracts;
using Serving.Engine.Model;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Demo;

/// <summary>
/// The demo adapters served with the demo model, generated deterministically:
/// three with random weights and different ranks and target modules (mixed batches exercise the multi-LoRA path), made
/// at start-up in a moment, and three trained on small synthetic domains with the train-adapter trainer, so their outputs
/// visibly differ from the base model's and <c>model: "auto"</c> has something to find: <c>demo-clinical</c> (a
/// clinical-note format), <c>demo-toylang</c> (toy language → English), <c>demo-digits</c> (reverse a digit string).
/// Training takes most of a first start, so the server trains them after it listens (<see cref="Train"/>), each its own
/// generated folder moved into the store root when done. Each trained one ships its training data (<c>train.jsonl</c>)
/// and routing examples.
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

    /// <summary>Training examples per trained demo adapter.</summary>
    private const int Examples = 96;

    /// <summary>Optimiser steps per trained demo adapter.</summary>
    public const int TrainingSteps = 80;

    /// <summary>The store root's folder name under the cache directory (versioned: a new demo set never reuses an old folder).</summary>
    public const string FolderName = DemoModel.Name + "-adapters-v3";

    /// <summary>Returns the store root for <paramref name="modelDir"/>, with the random-weight demo adapters generated if needed.</summary>
    public static string EnsureRandom(string cacheRoot, string modelDir)
    {
        string root = Path.Combine(cacheRoot, FolderName);
        GeneratedFolder.Ensure(root, staging =>
        {
            foreach (var (id, rank, alpha, targets, seed) in All)
                SyntheticAdapterWriter.Write(Path.Combine(staging, id), modelDir, rank, alpha, targets, seed);
        });
        return root;
    }

    /// <summary>The trained demo adapters not yet in <paramref name="root"/>, in training order.</summary>
    public static IReadOnlyList<(string Id, string Domain)> Missing(string root) =>
        [.. Trained.Where(t => !File.Exists(Path.Combine(root, t.Id, "adapter_config.json")))];

    /// <summary>
    /// Trains the demo adapter <paramref name="id"/> on <paramref name="model"/> (float32) into <c>root/id</c>, staged beside
    /// the root (never inside it, where a half-written folder would look like an adapter) and moved in when complete.
    /// </summary>
    /// <param name="root">The demo store root (<see cref="EnsureRandom"/>).</param>
    /// <param name="model">The demo model, loaded in float32.</param>
    /// <param name="id">One of <see cref="Trained"/>.</param>
    /// <param name="progress">After every step: (step, steps, loss); it may throw to stop the training (a stopping server).</param>
    public static void Train(string root, LoadedModel model, string id, Action<int, int, double>? progress = null)
    {
        int index = Trained.Select(t => t.Id).ToList().IndexOf(id);
        if (index < 0)
            throw new ArgumentException($"'{id}' is not a trained demo adapter", nameof(id));
        string domain = Trained[index].Domain;
        GeneratedFolder.Ensure(Path.Combine(root, id), folder =>
        {
            // One example stream for all three, in training order (the data the demo adapters have always had): this
            // adapter's examples follow the ones drawn for the adapters before it.
            var random = new SeededRandom(2026);
            foreach (var (_, earlier) in Trained.Take(index))
                for (int i = 0; i < Examples; i++)
                    SyntheticDomains.Example(earlier, random);
            var pairs = SyntheticDomains.TrainAdapter(model, domain, random, Examples, new LoraTrainingOptions
            {
                Rank = 8, Alpha = 16, Targets = SyntheticAdapterWriter.AllTargets, Steps = TrainingSteps, BatchSize = 8, LearningRate = 5e-3, Seed = 7,
            }, folder, progress);
            File.WriteAllLines(Path.Combine(folder, "train.jsonl"), pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Completion })));
            File.WriteAllLines(Path.Combine(folder, AdapterFileNames.RoutingExamples), pairs.Take(16).Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt })));
        }, stagingParent: StagingParent(root));
    }

    /// <summary>Where trained adapters are staged: a sibling of the store root on the same file system.</summary>
    public static string StagingParent(string root)
    {
        string parent = Path.TrimEndingDirectorySeparator(root) + ".training";
        Directory.CreateDirectory(parent);
        return parent;
    }
}
