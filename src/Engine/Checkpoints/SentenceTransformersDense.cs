using System.Text.Json.Nodes;
using Serving.Contracts.Safetensors;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// A sentence-transformers <c>Dense</c> module applied to a pooled embedding: <c>y = f(W·x + b)</c>, <c>W</c>
/// <c>[out, in]</c> row-major float32 on the host, <c>b</c> <c>[out]</c> or none, <c>f</c> identity or tanh — what
/// EmbeddingGemma's two projections (768 → 3,072 → 768) are. Read from the module folder's <c>config.json</c>
/// (<c>in_features</c>, <c>out_features</c>, <c>bias</c>, <c>activation_function</c>) and <c>model.safetensors</c>
/// (<c>linear.weight</c>, <c>linear.bias</c>).
/// </summary>
public sealed class SentenceTransformersDense
{
    private const string Identity = "torch.nn.modules.linear.Identity", Tanh = "torch.nn.modules.activation.Tanh";

    private readonly float[] _weight;
    private readonly float[]? _bias;
    private readonly bool _tanh;

    private SentenceTransformersDense(int inFeatures, int outFeatures, float[] weight, float[]? bias, bool tanh)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _weight = weight;
        _bias = bias;
        _tanh = tanh;
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }

    /// <summary><c>f(W·x + b)</c> for <paramref name="x"/> <c>[in]</c>: <c>[out]</c>, accumulated in double.</summary>
    public float[] Apply(ReadOnlySpan<float> x)
    {
        if (x.Length != InFeatures)
            throw new ArgumentException($"a Dense module of {InFeatures} inputs was given {x.Length}");
        var y = new float[OutFeatures];
        for (int o = 0; o < OutFeatures; o++)
        {
            var row = _weight.AsSpan(o * InFeatures, InFeatures);
            double sum = _bias?[o] ?? 0;
            for (int i = 0; i < InFeatures; i++)
                sum += (double)row[i] * x[i];
            y[o] = (float)(_tanh ? Math.Tanh(sum) : sum);
        }

        return y;
    }

    /// <summary>The module in <paramref name="folder"/>; every problem a <see cref="ModelLoadException"/> naming the file.</summary>
    public static SentenceTransformersDense Read(string folder)
    {
        string configPath = Path.Combine(folder, "config.json"), weightsPath = Path.Combine(folder, "model.safetensors");
        if (!File.Exists(configPath))
            throw new ModelLoadException($"{configPath}: a Dense module needs its config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new ModelLoadException($"{configPath}: expected a JSON object");
        int inFeatures = config["in_features"]?.GetValue<int>() ?? throw new ModelLoadException($"{configPath}: in_features missing");
        int outFeatures = config["out_features"]?.GetValue<int>() ?? throw new ModelLoadException($"{configPath}: out_features missing");
        if (inFeatures is < 1 or > 1 << 16 || outFeatures is < 1 or > 1 << 16)
            throw new ModelLoadException($"{configPath}: in_features and out_features must be from 1 to 65536, got {inFeatures} and {outFeatures}");
        bool hasBias = config["bias"]?.GetValue<bool>() ?? true;
        string activation = config["activation_function"]?.GetValue<string>() ?? Identity;
        if (activation is not (Identity or Tanh))
            throw new ModelLoadException($"{configPath}: activation_function '{activation}' is not served (known: {Identity}, {Tanh})");
        if (!File.Exists(weightsPath))
            throw new ModelLoadException($"{weightsPath}: a Dense module's weights must be in model.safetensors (a pickled pytorch_model.bin is never read)");
        byte[] content = File.ReadAllBytes(weightsPath);
        try
        {
            var file = SafetensorsFile.Parse(weightsPath, content);
            float[] weight = Tensor(file, content, "linear.weight", [outFeatures, inFeatures])!;
            float[]? bias = hasBias ? Tensor(file, content, "linear.bias", [outFeatures]) : null;
            return new SentenceTransformersDense(inFeatures, outFeatures, weight, bias, activation == Tanh);
        }
        catch (SafetensorsFormatException ex)
        {
            throw new ModelLoadException(ex.Message, ex);
        }
    }

    private static float[] Tensor(SafetensorsFile file, byte[] content, string name, long[] shape)
    {
        if (!file.Tensors.TryGetValue(name, out var t))
            throw new ModelLoadException($"{file.Path}: tensor {name} missing");
        if (!t.Shape.SequenceEqual(shape))
            throw new ModelLoadException($"{file.Path}: tensor {name} has shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
        var values = SafetensorsFloats.Read(content.AsSpan(checked((int)t.DataOffset), checked((int)t.ByteLength)), t.Dtype)
            ?? throw new ModelLoadException($"{file.Path}: tensor {name} has dtype {t.Dtype}; F32, F16 or BF16 expected");
        if (values.Any(v => !float.IsFinite(v)))
            throw new ModelLoadException($"{file.Path}: tensor {name} holds a non-finite value");
        return values;
    }
}
