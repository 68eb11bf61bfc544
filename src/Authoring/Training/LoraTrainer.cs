using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Authoring.Training;

/// <summary>
/// Trains a LoRA adapter on a frozen base model with TorchSharp autograd, through the same forward pass the server runs
/// (the adapter enters via <see cref="TrainingLoraKernel"/>): PEFT's initialisation (A Kaiming-uniform with a = √5, i.e.
/// U(−1/√in, 1/√in); B zero, so training starts from the base model), Adam, cross-entropy on the completion tokens only,
/// scale alpha / r; with <see cref="LoraTrainingOptions.UseDora"/> PEFT's DoRA parameterisation (a magnitude vector per
/// module, starting at the base weight's row norms). Deterministic for a seed: the same data, options and seed give the same adapter.
/// </summary>
public sealed class LoraTrainer(LoadedModel loaded, LoraTrainingOptions options)
{
    /// <summary>Called after every optimiser step with (step, steps, mean loss of the step's batch).</summary>
    public Action<int, int, double>? Progress { get; init; }

    /// <summary>Trains on <paramref name="data"/> and writes the PEFT folder <paramref name="outDir"/>; returns the loss of every step.</summary>
    public IReadOnlyList<double> Train(IReadOnlyList<TrainingExample> data, string outDir)
    {
        options.Validate();
        if (data.Count == 0)
            throw new ArgumentException("no training examples");
        var model = loaded.Model;
        if (model.Dtype != ScalarType.Float32)
            throw new ArgumentException("train on a float32 copy of the base model (load it with --dtype float32)");
        int context = data.Max(e => e.Tokens.Length);
        if (context > model.MaxPositions)
            throw new ArgumentException($"an example has {context} tokens, beyond the model's {model.MaxPositions} positions");
        foreach (var e in data)
            if (e.Prompt.Length == 0 || e.Completion.Length == 0)
                throw new ArgumentException("every example needs a non-empty prompt and completion");

        if (options.UseDora && model.Weights.Layers.Any(l => l.QkvBias is not null))
            throw new ArgumentException("DoRA training is not supported for a base model with projection biases");
        var parameters = CreateParameters(model);
        // The same weights with the autograd kernel: a view, so the model given keeps its own kernels.
        using var training = model.WithKernels(new KernelOptions
        {
            Lora = new TrainingLoraKernel(parameters, (float)(options.Alpha / options.Rank), (layer, target) => model.Weights.Projection(model.Config, layer, target).Weight),
        });
        if (training.Adapters is null)
            training.EnableAdapters(1, options.Rank);         // module shapes for the forward pass; the slots stay empty
        using var optimizer = new AdamOptimizer(parameters.Values.SelectMany(p => p.M is null ? new[] { p.A, p.B } : [p.A, p.B, p.M]).ToList(), options.LearningRate);
        var order = new SeededRandom(options.Seed);
        var shuffled = Enumerable.Range(0, data.Count).ToArray();
        var losses = new List<double>();
        int cursor = shuffled.Length;
        for (int step = 1; step <= options.Steps; step++)
        {
            optimizer.ZeroGrad();
            double total = 0;
            for (int b = 0; b < options.BatchSize; b++)
            {
                if (cursor == shuffled.Length)
                {
                    Shuffle(shuffled, order);
                    cursor = 0;
                }

                using var scope = NewDisposeScope();
                var loss = Loss(training, data[shuffled[cursor++]]).DividedBy(options.BatchSize);
                loss.backward();
                total += loss.item<float>();
            }

            optimizer.Step();
            losses.Add(total);
            Progress?.Invoke(step, options.Steps, total);
        }

        Save(model, parameters, outDir);
        return losses;
    }

    /// <summary>A, B and (DoRA) m per module: m starts at ‖W‖ row-wise, PEFT's initialisation, so training starts from the base model.</summary>
    private Dictionary<(int, LoraTarget), (Tensor A, Tensor B, Tensor? M)> CreateParameters(LlamaModel model)
    {
        var parameters = new Dictionary<(int, LoraTarget), (Tensor A, Tensor B, Tensor? M)>();
        // A generator of its own, not torch's global one: trainings running at once in one process (the demo adapters of
        // several servers, a test beside them) would interleave their draws and no longer be reproducible.
        using var generator = new TorchSharp.torch.Generator((ulong)options.Seed);
        var targets = options.Targets.Select(name => LoraTargets.Parse(name) ?? throw new ArgumentException($"unknown target module '{name}'")).ToArray();
        for (int layer = 0; layer < model.Config.NumLayers; layer++)
            foreach (var target in targets)
            {
                var (inF, outF) = LoraTargets.Shape(model.Config, target);
                double bound = 1.0 / Math.Sqrt(inF);
                var a = new TorchSharp.Modules.Parameter(empty([options.Rank, inF]).uniform_(-bound, bound, generator));
                var b = new TorchSharp.Modules.Parameter(zeros([outF, options.Rank]));
                TorchSharp.Modules.Parameter? m = null;
                if (options.UseDora)
                {
                    using var weight = model.Weights.Projection(model.Config, layer, target).Weight;
                    using var norms = weight.Squared().sum(1).sqrt();
                    m = new TorchSharp.Modules.Parameter(norms.detach().clone());
                }

                parameters[(layer, target)] = (a, b, m);
            }

        return parameters;
    }

    /// <summary>Mean cross-entropy of the completion tokens, each predicted from everything before it.</summary>
    private static Tensor Loss(LlamaModel model, TrainingExample example)
    {
        var tokens = example.Tokens;
        using var cache = model.CreateKvCache(1, tokens.Length + 1);
        var batch = ForwardBatch.Create([(cache.Partition(0), tokens, 0)]);
        var mapping = LoraBatchMapping.ForSequences([tokens.Length], [[(0, 1f)]]);
        var logits = model.Forward(batch, cache, LogitsSelection.AllTokens, mapping);          // [T, vocab]
        int first = example.Prompt.Length - 1, count = example.Completion.Length;
        var predicted = logits.narrow(0, first, count);
        var expected = tensor(example.Completion.Select(t => (long)t).ToArray(), ScalarType.Int64);
        return nn.functional.cross_entropy(predicted, expected);
    }

    private void Save(LlamaModel model, Dictionary<(int, LoraTarget), (Tensor A, Tensor B, Tensor? M)> parameters, string outDir)
    {
        var tensors = parameters.OrderBy(p => p.Key.Item1).ThenBy(p => p.Key.Item2).Select(p =>
        {
            var (layer, target) = p.Key;
            var (inF, outF) = LoraTargets.Shape(model.Config, target);
            return (layer, target, inF, outF, Bytes(p.Value.A), Bytes(p.Value.B));
        }).ToList();
        var magnitudes = options.UseDora ? parameters.ToDictionary(p => p.Key, p => Bytes(p.Value.M!)) : null;
        PeftAdapterWriter.Write(outDir, loaded.Directory, options.Rank, options.Alpha, useRsLora: false, tensors, magnitudes);
    }

    private static Func<byte[]> Bytes(Tensor t)
    {
        // Each wrapper held by a using: outside a dispose scope, a temporary's finalizer could free it while libtorch reads it.
        using var detached = t.detach();
        using var contiguous = detached.contiguous();
        var bytes = contiguous.bytes.ToArray();
        return () => bytes;
    }

    private static void Shuffle(int[] values, SeededRandom random)
    {
        for (int i = values.Length - 1; i > 0; i--)
        {
            int j = (int)(random.NextUInt64() % (ulong)(i + 1));
            (values[i], values[j]) = (values[j], values[i]);
        }
    }
}
