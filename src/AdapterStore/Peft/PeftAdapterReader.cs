using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Serving.AdapterStore.Files;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Peft;

/// <summary>
/// Reads a Hugging Face PEFT LoRA adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) into
/// float32 <see cref="LoraAdapterWeights"/>, checking every tensor against the base model. Accepts both tensor-name
/// forms (<c>...q_proj.lora_A.weight</c> and <c>...q_proj.lora_A.default.weight</c>, with or without the
/// <c>base_model.model.</c> prefix) and undoes <c>fan_in_fan_out</c>. On a multimodal model's language model (Gemma 3 4B+)
/// its layers are under <c>language_model</c>; on Phi-3 its modules are the stacked <c>qkv_proj</c> and <c>gate_up_proj</c>
/// (<see cref="PeftModules"/>); and the vision tower's and projector's LoRA weights are left unread: they act
/// on images only, which the server does not take, so a text request's output is the adapter's either way.
/// </summary>
public static partial class PeftAdapterReader
{
    public const string WeightsFile = AdapterFileReader.WeightsFile;

    // lora_A / lora_B (".weight", optionally after an adapter name) and DoRA's lora_magnitude_vector, which PEFT writes
    // with or without a ".weight" suffix depending on its version.
    // A multimodal model's language model names its layers under language_model (Gemma 3 4B+: "language_model.model." as
    // Google uploaded them, "model.language_model." as transformers 4.52+ names them).
    [GeneratedRegex(@"^(?:base_model\.model\.)?(?<prefix>model\.language_model\.|language_model\.model\.|model\.)layers\.(?<layer>\d+)\.(?<block>self_attn|mlp)\.(?<module>[a-z_]+)\.(?:lora_(?<ab>[AB])(?:\.[A-Za-z0-9_\-]+)?\.weight|(?<ab>lora_magnitude_vector)(?:\.[A-Za-z0-9_\-]+)?(?:\.weight)?)$")]
    private static partial Regex TensorName();

    /// <summary>A mixture-of-experts layer's MLP parts: Mixtral's block_sparse_moe, an expert or the router under mlp.</summary>
    [GeneratedRegex(@"\.(?:block_sparse_moe|mlp\.experts|mlp\.gate|mlp\.shared_expert)\b")]
    private static partial Regex MixtureOfExpertsModule();

    /// <summary>A multimodal model's vision tower and projector, which text requests never run through.</summary>
    [GeneratedRegex(@"^(?:base_model\.model\.)?(?:model\.)?(?:vision_tower|multi_modal_projector)\.")]
    private static partial Regex VisionModule();

    /// <summary>
    /// Reads the folder through <see cref="AdapterFileReader"/> with no confinement (tools, tests, the server's own files)
    /// and parses it; a file that cannot be read is an <see cref="AdapterFormatException"/> naming it.
    /// </summary>
    public static LoraAdapterWeights Read(string directory, string adapter, ModelConfig model, int maxRank, long maxBytes = int.MaxValue)
    {
        AdapterFiles files;
        try
        {
            files = AdapterFileReader.Read(directory, AdapterReadPolicy.Trusted(Math.Min(maxBytes, Array.MaxLength), Timeout.InfiniteTimeSpan), CancellationToken.None);
        }
        catch (AdapterFileException ex)
        {
            throw new AdapterFormatException(adapter, ex.File ?? directory, null, ex.Message);
        }

        using (files)
            return Read(files, adapter, model, maxRank);
    }

    /// <summary>
    /// Parses and validates adapter files already read (their bytes are what the version hashes), the version hashed on
    /// another core meanwhile (SHA-256 of a 10 MB adapter takes about as long as parsing it).
    /// </summary>
    public static LoraAdapterWeights Read(AdapterFiles files, string adapter, ModelConfig model, int maxRank)
    {
        LoraAdapterWeights? weights = null;
        try
        {
            Parallel.Invoke(() => weights = Parse(files, adapter, model, maxRank), () => _ = files.Version);
        }
        catch (AggregateException ex)
        {
            var inner = ex.Flatten().InnerExceptions;
            ExceptionDispatchInfo.Capture(inner.FirstOrDefault(e => e is AdapterFormatException) ?? inner[0]).Throw();
        }

        return weights!;
    }

    private static LoraAdapterWeights Parse(AdapterFiles files, string adapter, ModelConfig model, int maxRank)
    {
        string config;
        try
        {
            config = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(files.Config);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new AdapterFormatException(adapter, PeftLoraConfig.FileName, null, "is not UTF-8 text");
        }

        var peft = PeftLoraConfig.Parse(config, adapter);
        SafetensorsFile file;
        try
        {
            file = SafetensorsFile.Parse(WeightsFile, files.Weights);
        }
        catch (SafetensorsFormatException ex)
        {
            throw new AdapterFormatException(adapter, WeightsFile, null, ex.Message.Replace(WeightsFile + ": ", "", StringComparison.Ordinal));
        }

        // Keyed by a module's first projection; Phi-3's stacked modules adapt the rest of their group too (PeftModules).
        var pairs = new Dictionary<(int Layer, LoraTarget Target), (SafetensorsTensorInfo? A, SafetensorsTensorInfo? B)>();
        var magnitudes = new Dictionary<(int Layer, LoraTarget Target), SafetensorsTensorInfo>();
        var groups = new Dictionary<LoraTarget, IReadOnlyList<LoraTarget>>();
        string? prefix = null;
        var experts = model.Experts is null ? null : new PeftExpertTensors(model, peft, adapter);
        foreach (var t in file.Tensors.Values)
        {
            if (model.IsLanguageModelOfMultimodal && VisionModule().IsMatch(t.Name))
                continue;
            if (experts is not null && experts.TryAdd(t))
                continue;
            var m = TensorName().Match(t.Name);
            if (model.Experts is not null && (m.Success ? m.Groups["block"].Value == "mlp" : MixtureOfExpertsModule().IsMatch(t.Name)))
                throw Fail(adapter, t.Name, "adapts a mixture-of-experts layer's router, shared expert or dense MLP; adapters of this model may adapt the attention's q/k/v/o and the experts' projections");
            if (!m.Success)
                throw Fail(adapter, t.Name, "is not a LoRA A/B weight or DoRA magnitude of a decoder-layer projection (modules_to_save, embeddings and biases are not supported)");
            if ((prefix ??= m.Groups["prefix"].Value) != m.Groups["prefix"].Value)
                throw Fail(adapter, t.Name, $"names its layers under '{m.Groups["prefix"].Value}', other tensors under '{prefix}'");
            int layer = Index(m.Groups["layer"].Value);
            if (PeftModules.Targets(m.Groups["block"].Value, m.Groups["module"].Value, model) is not { } group)
                throw Fail(adapter, t.Name, $"targets module '{m.Groups["block"].Value}.{m.Groups["module"].Value}', which this base model does not have");
            var target = group[0];
            groups[target] = group;
            if (layer >= model.NumLayers)
                throw Fail(adapter, t.Name, $"targets layer {layer}; the base model has {model.NumLayers} layers");
            if (m.Groups["ab"].Value == "lora_magnitude_vector")
            {
                if (!peft.UseDora)
                    throw Fail(adapter, t.Name, $"is a DoRA magnitude vector, but {PeftLoraConfig.FileName} does not set use_dora");
                if (!magnitudes.TryAdd((layer, target), t))
                    throw Fail(adapter, t.Name, "is a second magnitude vector for the same module");
                continue;
            }

            pairs.TryGetValue((layer, target), out var pair);
            pairs[(layer, target)] = m.Groups["ab"].Value == "A" ? (t, pair.B) : (pair.A, t);
        }

        foreach (var key in magnitudes.Keys.Where(k => !pairs.ContainsKey(k)))
            throw Fail(adapter, magnitudes[key].Name, "has no lora_A / lora_B pair for its module");

        if (pairs.Count == 0 && (experts?.Count ?? 0) == 0)
            throw new AdapterFormatException(adapter, WeightsFile, null, "contains no LoRA weights");
        var expertPlans = experts?.Plans(maxRank) ?? [];
        var plans = new List<(int Layer, IReadOnlyList<LoraTarget> Targets, int Rank, float Scale, int In, int Out, SafetensorsTensorInfo A, SafetensorsTensorInfo B,
            SafetensorsTensorInfo? Magnitude)>();
        foreach (var ((layer, target), (a, b)) in pairs.OrderBy(p => p.Key.Layer).ThenBy(p => p.Key.Target))
        {
            var group = groups[target];
            string fullName = $"{prefix}layers.{layer}.{PeftModules.Path(group)}";
            if (a is null || b is null)
                throw Fail(adapter, (a ?? b)!.Name, $"has no matching lora_{(a is null ? "A" : "B")} tensor");
            if (!peft.Targets(fullName, layer))
                throw Fail(adapter, a.Name, $"module '{fullName}' is not selected by target_modules / layers_to_transform in {PeftLoraConfig.FileName}");
            var (rank, alpha) = peft.For(fullName);
            if (rank > maxRank)
                throw Fail(adapter, a.Name, $"rank {rank} is above the server's max rank {maxRank}");
            int inF = LoraTargets.Shape(model, target).In, outF = group.Sum(member => LoraTargets.Shape(model, member).Out);
            long[] expectA = peft.FanInFanOut ? [inF, rank] : [rank, inF];
            long[] expectB = peft.FanInFanOut ? [rank, outF] : [outF, rank];
            CheckShape(adapter, a, expectA);
            CheckShape(adapter, b, expectB);
            SafetensorsTensorInfo? mt = null;
            if (peft.UseDora)
            {
                if (!magnitudes.TryGetValue((layer, target), out mt))
                    throw Fail(adapter, a.Name, $"module '{fullName}' has no lora_magnitude_vector, which use_dora requires");
                CheckShape(adapter, mt, [outF]);
            }

            plans.Add((layer, group, rank, (float)peft.Scale(rank, alpha), inF, outF, a, b, mt));
        }

        // The float copies over every core: each is fresh memory, and on a virtual machine its page faults cost more than
        // the copy. A bad value is reported for the first module in order that has one, as a sequential read would.
        var modules = new LoraModuleWeights[plans.Count + expertPlans.Count][];
        var errors = new AdapterFormatException?[modules.Length];
        Parallel.For(0, modules.Length, i =>
        {
            if (i >= plans.Count)
            {
                try
                {
                    modules[i] = expertPlans[i - plans.Count](t => ReadFloats(adapter, files.Weights, t));
                }
                catch (AdapterFormatException ex)
                {
                    errors[i] = ex;
                }

                return;
            }

            var plan = plans[i];
            try
            {
                var aData = ReadFloats(adapter, files.Weights, plan.A);
                var bData = ReadFloats(adapter, files.Weights, plan.B);
                if (peft.FanInFanOut)
                {
                    aData = Transpose(aData, plan.In, plan.Rank);
                    bData = Transpose(bData, plan.Rank, plan.Out);
                }

                var magnitude = plan.Magnitude is null ? null : ReadFloats(adapter, files.Weights, plan.Magnitude);
                modules[i] = new LoraModuleWeights[plan.Targets.Count];
                int row = 0;
                for (int k = 0; k < plan.Targets.Count; k++)
                {
                    // A stacked module's member: the shared A, its rows of B [out, r] and of the magnitudes [out].
                    int rows = LoraTargets.Shape(model, plan.Targets[k]).Out;
                    bool whole = plan.Targets.Count == 1;
                    modules[i][k] = new LoraModuleWeights(plan.Layer, plan.Targets[k], plan.Rank, plan.Scale, aData,
                        whole ? bData : bData.AsSpan(row * plan.Rank, rows * plan.Rank).ToArray(),
                        whole || magnitude is null ? magnitude : magnitude.AsSpan(row, rows).ToArray());
                    row += rows;
                }
            }
            catch (AdapterFormatException ex)
            {
                errors[i] = ex;
            }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } error)
            ExceptionDispatchInfo.Capture(error).Throw();
        return new LoraAdapterWeights(adapter, [.. modules.SelectMany(m => m)]);
    }

    internal static void CheckShape(string adapter, SafetensorsTensorInfo t, long[] expected)
    {
        if (!t.Shape.SequenceEqual(expected))
            throw Fail(adapter, t.Name, $"has shape [{string.Join(", ", t.Shape)}]; this base model and the configured rank need [{string.Join(", ", expected)}]");
    }

    internal static float[] ReadFloats(string adapter, ReadOnlySpan<byte> content, SafetensorsTensorInfo t)
    {
        var bytes = content.Slice(checked((int)t.DataOffset), checked((int)t.ByteLength));
        var values = SafetensorsFloats.Read(bytes, t.Dtype) ?? throw Fail(adapter, t.Name, $"has dtype {t.Dtype}; LoRA weights must be F32, F16 or BF16");
        if (!AllFinite(values))
        {
            int bad = Array.FindIndex(values, v => !float.IsFinite(v));
            throw Fail(adapter, t.Name, $"contains a non-finite value ({values[bad]}) at element {bad}");
        }

        return values;
    }

    /// <summary>
    /// True when no value is NaN or infinite: v − v is 0 exactly for finite v and NaN otherwise, checked a vector at a time
    /// (a delegate per value took several milliseconds of a ~10 MB adapter's read).
    /// </summary>
    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var vectors = MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(values);
            var any = System.Numerics.Vector<float>.Zero;
            foreach (var v in vectors)
                any |= v - v;   // NaN anywhere keeps NaN bits set in some lane
            if (!System.Numerics.Vector.EqualsAll(System.Numerics.Vector.AsVectorUInt32(any), System.Numerics.Vector<uint>.Zero))
                return false;
            i = vectors.Length * System.Numerics.Vector<float>.Count;
        }

        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                return false;
        return true;
    }

    private static float[] Transpose(float[] data, int rows, int columns)
    {
        var result = new float[data.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[c * rows + r] = data[r * columns + c];
        return result;
    }

    /// <summary>A layer's or an expert's index as a tensor name spells it; beyond int (a name's digits are the tenant's) it is int.MaxValue, beyond every model.</summary>
    internal static int Index(string digits) =>
        int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index) ? index : int.MaxValue;

    internal static AdapterFormatException Fail(string adapter, string tensor, string rule) => new(adapter, WeightsFile, $"tensor '{tensor}'", rule);
}
