using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Engine.Checkpoints;
using Serving.Engine.Model;
using Serving.Engine.Tests.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Checkpoints;

public sealed class CheckpointLoadingTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 7586, 21831, 18045];
    private readonly string _root = TestDirectories.Create("checkpoints");

    private string Generate(string name, SyntheticModelSpec spec)
    {
        string dir = Path.Combine(_root, name);
        SyntheticModelWriter.Write(dir, spec with { Preset = ModelPreset.Tiny, Seed = 3 });
        return dir;
    }

    private static float[] LastLogits(string dir, ScalarType dtype)
    {
        using var loaded = LoadedModel.Load(dir, dtype, CPU, 128);
        using var cache = loaded.Model.CreateKvCache(1, 32);
        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache);
        using var f = logits.to(ScalarType.Float32);
        return LlamaModelTests.Rows(f)[0];
    }

    /// <summary>
    /// Mistral Small 3.1 ships only as Mistral3ForConditionalGeneration, Pixtral as LlavaForConditionalGeneration: the
    /// language model's fields in text_config, its tensors (an lm_head too) under either prefix beside a vision tower. Served
    /// for text, it is the causal LM of the same weights, bit for bit.
    /// </summary>
    [Theory]
    [InlineData("MistralForCausalLM", "language_model.model.", "Mistral3ForConditionalGeneration")]
    [InlineData("MistralForCausalLM", "model.language_model.", "Mistral3ForConditionalGeneration")]
    [InlineData("LlamaForCausalLM", "language_model.model.", "LlavaForConditionalGeneration")]
    public void Load_MultimodalCheckpoint_TheLanguageModelsLogits(string architecture, string prefix, string wrapper)
    {
        string plain = Generate("plain-" + architecture, new() { Architecture = architecture });
        string multimodal = Generate($"multimodal-{architecture}-{prefix.Replace('.', '-')}", new() { Architecture = architecture, MultimodalPrefix = prefix });
        Assert.Contains(wrapper, File.ReadAllText(Path.Combine(multimodal, "config.json")));
        Assert.True(File.ReadAllText(Path.Combine(multimodal, "model.safetensors")).Contains("vision_tower", StringComparison.Ordinal));

        Assert.Equal(LastLogits(plain, ScalarType.Float32), LastLogits(multimodal, ScalarType.Float32));
    }

    /// <summary>
    /// Added tokens may lie beyond config.json's vocab_size (Gemma 3 1B's image token; Gemma3CheckpointServingTests serves
    /// one), the tokenizer's own vocabulary may not: its tokens would index past the embedding.
    /// </summary>
    [Fact]
    public void Load_TokenizerVocabularyBeyondTheModels_RefusedNamingBoth()
    {
        string dir = Generate("small-vocab", new());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        int vocab = (int)config["vocab_size"]!;
        config["vocab_size"] = vocab - 10;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());

        var error = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 128));

        Assert.Contains($"vocab_size is {vocab - 10}", error.Message);
        Assert.Contains("tokenizer.json", error.Message);
    }

    [Fact]
    public void Load_ShardedCheckpoint_EqualsSingleFile()
    {
        var single = LastLogits(Generate("single", new()), ScalarType.Float32);
        string sharded = Generate("sharded", new() { Shards = 3 });
        Assert.True(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
        Assert.Equal(3, Directory.GetFiles(sharded, "model-*-of-00003.safetensors").Length);
        LlamaModelTests.AssertClose(single, LastLogits(sharded, ScalarType.Float32), "sharded", 0);
    }

    [Theory]
    [InlineData("BF16", 0.25f)]
    [InlineData("F16", 0.05f)]
    public void Load_HalfPrecisionOnDisk_ConvertsToFloat32Compute(string diskDtype, float tolerance)
    {
        var disk = Enum.Parse<SafetensorsDtype>(diskDtype);
        var reference = LastLogits(Generate("f32", new()), ScalarType.Float32);
        var converted = LastLogits(Generate(disk.ToString(), new() { DiskDtype = disk }), ScalarType.Float32);
        LlamaModelTests.AssertClose(reference, converted, $"{disk} on disk", tolerance);
        Assert.NotEqual(reference, converted);
    }

    [Fact]
    public void Load_WithProgress_ReportsRisingBytesUpToTheCheckpointsTotal()
    {
        string dir = Generate("progress", new() { Shards = 2 });
        var reports = new List<(long Read, long Total)>();

        using var loaded = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 64, progress: (read, total) => reports.Add((read, total)));

        long onDisk = CheckpointFiles.Open(dir).TotalBytes;
        Assert.True(reports.Count > 10, $"{reports.Count} reports");
        Assert.All(reports, r => Assert.Equal(onDisk, r.Total));
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second.Read > p.First.Read), "bytes read must rise with every tensor");
        Assert.Equal(onDisk, reports[^1].Read);
    }

    [Fact]
    public void Load_Bfloat16Compute_CloseToFloat32()
    {
        string dir = Generate("bf16compute", new());
        LlamaModelTests.AssertClose(LastLogits(dir, ScalarType.Float32), LastLogits(dir, ScalarType.BFloat16), "bf16 compute", 0.5f);
    }

    [Fact]
    public void Load_TiedEmbeddings_UsesEmbeddingAsLmHead()
    {
        string dir = Generate("tied", new() { TieWordEmbeddings = true });
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        Assert.True(loaded.Model.Weights.Tied);
        Assert.Same(loaded.Model.Weights.Embed, loaded.Model.Weights.LmHead);
        new ScalarReferenceModel(dir).Forward(Prompt);
    }

    [Fact]
    public void Load_Qwen2WithAttentionBias_MatchesScalarReference()
    {
        string dir = Generate("qwen2", new() { Architecture = "Qwen2ForCausalLM" });
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        Assert.NotNull(loaded.Model.Weights.Layers[0].QkvBias);
        var expected = new ScalarReferenceModel(dir).Forward(Prompt)[^1];
        LlamaModelTests.AssertClose(expected, LastLogits(dir, ScalarType.Float32), "qwen2");
    }

    /// <summary>
    /// YaRN as Qwen's cards enable it (factor 4 over the original context): over the tiny model's 16-wide heads and an
    /// original context of 2,048 the ramp keeps 2 frequency pairs, interpolates 2 and mixes 4, and q·k grow by
    /// (0.1·ln 4 + 1)² — the engine must give the reference's logits, and other ones than without scaling.
    /// </summary>
    [Fact]
    public void Load_YarnRopeScaling_MatchesScalarReference()
    {
        string dir = Generate("yarn", new() { Architecture = "Qwen3ForCausalLM" });
        var plain = LastLogits(dir, ScalarType.Float32);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        config["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 2048 };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());

        var scaled = LastLogits(dir, ScalarType.Float32);

        LlamaModelTests.AssertClose(new ScalarReferenceModel(dir).Forward(Prompt)[^1], scaled, "yarn");
        Assert.True(plain.Zip(scaled, (a, b) => MathF.Abs(a - b)).Max() > 0.01f, "YaRN changed nothing");
    }

    /// <summary>
    /// An embedding model as Qwen3-Embedding ships: config.json says Qwen3ForCausalLM, the tensors are the bare Qwen3Model's
    /// (no <c>model.</c> prefix, no lm_head), sentence-transformers' modules pool by the last token. Read under the causal
    /// LM's names, its hidden states are the causal LM's with the same values.
    /// </summary>
    [Fact]
    public void Load_EmbeddingModelAsShipped_BareNamesNoHead_TheCausalLmsHiddenStates()
    {
        using var causal = LoadedModel.Load(Generate("causal", new() { Architecture = "Qwen3ForCausalLM" }), ScalarType.Float32, CPU, 128);
        using var embedding = LoadedModel.Load(Generate("embedding", new() { Architecture = "Qwen3ForCausalLM", EmbeddingModel = true }), ScalarType.Float32, CPU, 128);

        Assert.False(causal.EmbeddingOnly);
        Assert.True(embedding.EmbeddingOnly);
        Assert.Equal("lasttoken", embedding.EmbeddingModules.PoolingMode);
        Assert.True(embedding.Model.Weights.Tied);
        Assert.Equal(HiddenStates(causal), HiddenStates(embedding));
    }

    private static float[] HiddenStates(LoadedModel loaded)
    {
        using var cache = loaded.Model.CreateKvCache(1, 32);
        using var hidden = new HiddenStateCapture();
        using (loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache, LogitsSelection.AllTokens, hidden: hidden))
        {
        }

        return [.. Enumerable.Range(0, Prompt.Length).SelectMany(hidden.Row)];
    }

    [Theory]
    [InlineData("1_Pooling", "pooling_mode_max_tokens", "max_tokens")]
    [InlineData("1_Pooling", "pooling_mode_unheard_of", "sets no pooling_mode_")]
    [InlineData("../outside", "pooling_mode_lasttoken", "leaves the model folder")]
    public void Load_EmbeddingModelPoolingOtherwise_RefusedNamingIt(string folder, string flag, string problem)
    {
        string dir = Generate("pooling-" + problem.Split(' ')[0], new() { EmbeddingModel = true });
        var modules = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "modules.json")))!;
        modules[1]!["path"] = folder;
        File.WriteAllText(Path.Combine(dir, "modules.json"), modules.ToJsonString());
        Directory.CreateDirectory(Path.Combine(dir, folder));
        File.WriteAllText(Path.Combine(dir, folder, "config.json"), new JsonObject { [flag] = true }.ToJsonString());

        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));

        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void Load_MissingTensor_NamesTensor()
    {
        string dir = Generate("missing", new());
        RewriteWithout(dir, "model.layers.1.mlp.up_proj.weight");
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", ex.Message);
    }

    [Fact]
    public void Load_WrongShape_NamesFileAndTensor()
    {
        string dir = Generate("shape", new());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        config["intermediate_size"] = 180;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));
        Assert.Contains("model.safetensors", ex.Message);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", ex.Message);
    }

    [Fact]
    public void Load_TruncatedFile_NamesFile()
    {
        string dir = Generate("truncated", new());
        string path = Path.Combine(dir, "model.safetensors");
        using (var f = new FileStream(path, FileMode.Open))
            f.SetLength(f.Length - 1000);
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));
        Assert.Contains(path, ex.Message);
        Assert.Contains("lm_head.weight", ex.Message);
    }

    [Fact]
    public void Load_UnknownArchitecture_NamesIt()
    {
        string dir = Generate("arch", new());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        config["architectures"] = new JsonArray("GPTNeoXForCausalLM");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));
        Assert.Contains("GPTNeoXForCausalLM", ex.Message);
        Assert.Contains("config.json", ex.Message);
    }

    [Fact]
    public void Load_IndexNamesMissingShard_Throws()
    {
        string dir = Generate("badindex", new() { Shards = 2 });
        File.Delete(Path.Combine(dir, "model-00002-of-00002.safetensors"));
        var ex = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(dir, ScalarType.Float32, CPU, 64));
        Assert.Contains("model-00002-of-00002.safetensors", ex.Message);
    }

    private static void RewriteWithout(string dir, string tensor)
    {
        string path = Path.Combine(dir, "model.safetensors");
        var file = SafetensorsFile.Open(path);
        var entries = file.Tensors.Values.Where(t => t.Name != tensor).OrderBy(t => t.DataOffset).Select(t =>
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            return SafetensorsWriter.Entry.Of(t.Name, t.Dtype, t.Shape, bytes);
        }).ToList();
        SafetensorsWriter.Write(path, entries);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
