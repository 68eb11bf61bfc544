using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Routing;
using Serving.Engine.Sampling;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Bench;

/// <summary>
/// Routing accuracy on trained adapters: three synthetic domains (digit reversal, a clinical-note format, a toy language),
/// one LoRA adapter trained per domain on the tiny model with <see cref="LoraTrainer"/>, then held-out prompts of each
/// domain routed by Arrow among the three; prints the confusion matrix and top-1 accuracy, for routing over the first
/// layer and over all layers.
/// </summary>
internal sealed class RoutingEvaluation(int steps, int heldOut)
{
    private static readonly IReadOnlyList<string> Domains = SyntheticDomains.Names;

    private static (string Prompt, string Completion) Example(string domain, SeededRandom r) => SyntheticDomains.Example(domain, r);

    public BenchReport Run()
    {
        string root = Path.Combine(BenchModel.CacheRoot, "routing-eval");
        string modelDir = Path.Combine(root, "base");
        Directory.CreateDirectory(root);
        GeneratedFolder.Ensure(modelDir, staging => SyntheticModelWriter.Write(staging, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = 11 }));
        var prototypes = new List<ArrowPrototypes>();
        var random = new SeededRandom(5);
        foreach (string domain in Domains)
        {
            using var training = LoadedModel.Load(modelDir, ScalarType.Float32, CPU, 512);
            string outDir = Path.Combine(root, domain);
            SyntheticDomains.TrainAdapter(training, domain, random, 96, new LoraTrainingOptions
            {
                Rank = 8, Alpha = 16, Targets = SyntheticAdapterWriter.AllTargets, Steps = steps, BatchSize = 8, LearningRate = 5e-3, Seed = 2,
            }, outDir);
            prototypes.Add(ArrowPrototypes.Compute(ReadWeights(outDir, training.Config, domain)));
        }

        using var loaded = LoadedModel.Load(modelDir, ScalarType.Float32, CPU, 512);
        var report = new BenchReport($"Arrow routing accuracy: 3 trained domain adapters (tiny model, {steps} steps each), {heldOut} held-out prompts per domain",
            "route over layer 1", "route over all layers");
        var accuracy = new double?[2];
        var matrices = new int[2][,];
        for (int v = 0; v < 2; v++)
        {
            int layers = v == 0 ? 1 : loaded.Config.NumLayers;
            var confusion = new int[Domains.Count, Domains.Count];
            var heldRandom = new SeededRandom(99);
            for (int d = 0; d < Domains.Count; d++)
                for (int i = 0; i < heldOut; i++)
                {
                    var prompt = loaded.Tokenizer.Encode(Example(Domains[d], heldRandom).Prompt);
                    var inputs = loaded.Model.CaptureProjectionInputs(prompt, layers);
                    var (chosen, _) = ArrowRouter.Route(prototypes, inputs, prompt.Length, 1, 1.0);
                    confusion[d, chosen[0].Candidate]++;
                }

            matrices[v] = confusion;
            accuracy[v] = Enumerable.Range(0, Domains.Count).Sum(d => confusion[d, d]) * 100.0 / (Domains.Count * heldOut);
        }

        report.Add("top-1 routing accuracy (target ≥ 90)", "%", accuracy);
        var task = TaskAccuracy(loaded, root, prototypes);
        report.Add("task exact match, base model", "%", task.Base, null);
        report.Add("task exact match, oracle adapter", "%", task.Oracle, null);
        report.Add("task exact match, model auto (layer-1 routing)", "%", task.Auto, null);
        for (int d = 0; d < Domains.Count; d++)
            for (int c = 0; c < Domains.Count; c++)
                report.Add($"confusion: {Domains[d]} prompts → {Domains[c]} adapter", "count", matrices[0][d, c], matrices[1][d, c]);
        return report;
    }

    /// <summary>Greedy completions of held-out prompts compared with the expected ones: base model, the right adapter, and Arrow's pick.</summary>
    private (double Base, double Oracle, double Auto) TaskAccuracy(LoadedModel loaded, string root, List<ArrowPrototypes> prototypes)
    {
        var model = loaded.Model;
        var arena = model.EnableAdapters(Domains.Count, 8);
        for (int d = 0; d < Domains.Count; d++)
            arena.Load(d, ReadWeights(Path.Combine(root, Domains[d]), loaded.Config, Domains[d]));
        using var cache = model.CreateKvCache(1, 256);
        var stepper = new Engine.Generation.GenerationStepper(model, cache);
        string Generate(int[] prompt, IReadOnlyList<AdapterSlotWeight> adapters)
        {
            var state = new Engine.Generation.SequenceState(prompt, new SamplingParams { Temperature = 0, MaxTokens = 24 }, loaded.Tokenizer, loaded.EosTokenIds, adapters);
            var text = new System.Text.StringBuilder();
            while (!state.IsFinished)
                foreach (var e in stepper.RunAll([state]))
                    text.Append(e?.TextDelta);
            return text.ToString();
        }

        var random = new SeededRandom(1234);
        int baseHits = 0, oracleHits = 0, autoHits = 0, total = 0;
        for (int d = 0; d < Domains.Count; d++)
            for (int i = 0; i < heldOut; i++)
            {
                var (promptText, expected) = Example(Domains[d], random);
                var prompt = loaded.Tokenizer.Encode(promptText);
                var (chosen, _) = ArrowRouter.Route(prototypes, model.CaptureProjectionInputs(prompt, 1), prompt.Length, 1, 1.0);
                baseHits += Generate(prompt, []) == expected ? 1 : 0;
                oracleHits += Generate(prompt, [(d, 1f)]) == expected ? 1 : 0;
                autoHits += Generate(prompt, [(chosen[0].Candidate, 1f)]) == expected ? 1 : 0;
                total++;
            }

        return (baseHits * 100.0 / total, oracleHits * 100.0 / total, autoHits * 100.0 / total);
    }

    /// <summary>The trained PEFT folder read back as the serving engine reads adapters (float32 A and B).</summary>
    private static LoraAdapterWeights ReadWeights(string dir, Serving.Contracts.Configuration.ModelConfig config, string name) =>
        AdapterStore.Peft.PeftAdapterReader.Read(dir, name, config, 64);
}
