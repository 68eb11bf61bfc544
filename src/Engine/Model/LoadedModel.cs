using Serving.Contracts.Configuration;
using Serving.Engine.Checkpoints;
using Serving.Engine.Quantization;
using TorchSharp;
using Serving.Engine.Tokenization;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>A model folder loaded and ready to run: architecture, weights on the device, tokenizer, generation defaults.</summary>
public sealed class LoadedModel : IDisposable
{
    private LoadedModel(string directory, ModelConfig config, GenerationDefaults defaults, HfTokenizer tokenizer, ChatTemplate chatTemplate, LlamaModel model,
        bool embeddingOnly, SentenceTransformersModules embeddingModules)
    {
        EmbeddingOnly = embeddingOnly;
        EmbeddingModules = embeddingModules;
        Directory = directory;
        Config = config;
        GenerationDefaults = defaults;
        Tokenizer = tokenizer;
        Model = model;
        ChatTemplate = chatTemplate;
        EosTokenIds = defaults.EosTokenIds.Count > 0 ? defaults.EosTokenIds
            : config.EosTokenIds.Count > 0 ? config.EosTokenIds
            : tokenizer.Specials.EosId is int eos ? [eos] : [];
        Constraints = new Constraints.TokenConstraintCompiler(tokenizer, config.VocabSize);
    }

    public string Directory { get; }
    public ModelConfig Config { get; }
    public GenerationDefaults GenerationDefaults { get; }
    public HfTokenizer Tokenizer { get; }
    public LlamaModel Model { get; }
    public ChatTemplate ChatTemplate { get; }
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>
    /// Whether the checkpoint is a bare transformer (saved without the causal LM's names or head, or config.json naming a
    /// <c>…Model</c> class), or one attending bidirectionally (EmbeddingGemma): an embedding model, whose logits mean nothing.
    /// </summary>
    public bool EmbeddingOnly { get; }

    /// <summary>The folder's sentence-transformers pooling and Dense modules (<see cref="SentenceTransformersModules.None"/> when it declares none).</summary>
    public SentenceTransformersModules EmbeddingModules { get; }

    /// <summary>Structured-output constraints compiled against this model's vocabulary, cached by content.</summary>
    public Constraints.TokenConstraintCompiler Constraints { get; }

    /// <summary>
    /// The tokenizer's ids must fit the model's vocabulary, except added tokens beyond it: Gemma 3 1B's tokenizer has
    /// <c>&lt;image_soft_token&gt;</c> at 262,144 over a vocabulary of 262,144 (the multimodal models' token). The model
    /// never predicts those, and a prompt holding one is refused as outside the vocabulary.
    /// </summary>
    private static void CheckVocabulary(string directory, HfTokenizer tokenizer, int vocabSize)
    {
        if (tokenizer.VocabSize <= vocabSize)
            return;
        var added = tokenizer.AddedTokens.Select(t => t.Id).ToHashSet();
        for (int id = vocabSize; id < tokenizer.VocabSize; id++)
            if (tokenizer.IdToToken(id) is not null && !added.Contains(id))
                throw new ModelLoadException($"{directory}: tokenizer.json has {tokenizer.VocabSize} tokens but config.json vocab_size is {vocabSize}");
    }

    /// <summary>
    /// Loads <paramref name="directory"/>. Every problem (unknown architecture, missing or misshapen tensor,
    /// truncated file, bad tokenizer) surfaces as one <see cref="ModelLoadException"/> naming the file and tensor.
    /// <paramref name="packForAmx"/>: bfloat16 projections on a CPU with AMX are held in its tile layout (see
    /// <see cref="ProjectionWeight"/>); false keeps libtorch's path (benchmarks compare the two). <paramref name="kernels"/>: which
    /// kernels the model may use (null: the defaults), chosen once. <paramref name="quantization"/>: int8 projections
    /// (CPU only, bfloat16 or float32 compute; anything else is refused with a <see cref="ModelLoadException"/>).
    /// <paramref name="tokenizerDirectory"/>: where the tokenizer and its chat template are read from (null: <paramref name="directory"/>).
    /// <paramref name="configOverrides"/>: fields laid over config.json (vLLM's <c>--hf-overrides</c>).
    /// </summary>
    public static LoadedModel Load(string directory, ScalarType dtype, Device device, int maxPositions, bool packForAmx = true, Kernels.KernelOptions? kernels = null,
        Action<long, long>? progress = null, WeightQuantization quantization = WeightQuantization.None, string? tokenizerDirectory = null,
        System.Text.Json.Nodes.JsonObject? configOverrides = null)
    {
        if (quantization == WeightQuantization.Mxfp4 && (device.type != DeviceType.CPU || dtype is not (ScalarType.BFloat16 or ScalarType.Float32)))
            throw new ModelLoadException($"--quantization mxfp4 holds MXFP4 weights for the CPU kernel of a bfloat16 or float32 model, not {dtype} on {device}");
        if (quantization == WeightQuantization.Int8)
        {
            if (device.type != DeviceType.CPU)
                throw new ModelLoadException($"--quantization int8 runs on the CPU only: TorchSharp binds no int8 weight-only matmul for {device} (libtorch's _weight_int8pack_mm is not reachable from .NET); serve bfloat16 there, or run int8 on a CPU device");
            if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
                throw new ModelLoadException($"--quantization int8 computes in bfloat16 or float32, not {dtype}");
        }

        if (!System.IO.Directory.Exists(directory))
            throw new ModelLoadException($"model folder '{directory}' does not exist");
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
            throw new ModelLoadException($"{directory}: config.json not found");
        try
        {
            var config = ModelConfig.Load(configPath, configOverrides);
            var defaults = GenerationDefaults.Load(Path.Combine(directory, "generation_config.json"));
            string tokenizerFolder = tokenizerDirectory ?? directory;
            var tokenizer = HfTokenizer.Load(tokenizerFolder);
            CheckVocabulary(tokenizerFolder, tokenizer, config.VocabSize);
            var chatTemplate = LoadChatTemplate(tokenizerFolder, tokenizer);
            var files = CheckpointFiles.Open(directory);
            var modules = SentenceTransformersModules.Read(directory, config.HiddenSize);
            bool embeddingOnly = files.SavedAsBareModel || config.DeclaresBareModel || config.BidirectionalAttention;
            if (embeddingOnly && modules.PoolingMode is { } mode && modules.Pooling is null)
                throw new ModelLoadException($"{directory}: an embedding model pooling by '{mode}' (its sentence-transformers Pooling module); served: lasttoken, mean_tokens, cls_token");
            if (quantization == WeightQuantization.Mxfp4 && !files.TensorNames.Any(n => n.EndsWith("_blocks", StringComparison.Ordinal)))
                throw new ModelLoadException($"{directory}: --quantization mxfp4 holds a checkpoint's MXFP4 weights as they ship, and this checkpoint has none (gpt-oss's experts as OpenAI ships them are)");
            LlamaWeights weights;
            using (var loader = new TensorLoader(files, dtype, device) { Progress = progress })
                weights = LlamaWeights.Load(config, loader, files, packForAmx, quantization);
            int positions = Math.Min(maxPositions, config.MaxPositionEmbeddings);
            return new LoadedModel(directory, config, defaults, tokenizer, chatTemplate, new LlamaModel(config, weights, positions, dtype, device, kernels),
                embeddingOnly, modules);
        }
        catch (Exception ex) when (ex is ModelConfigException or TokenizerException)
        {
            throw new ModelLoadException(ex.Message, ex);
        }
    }

    /// <summary>chat_template.jinja when the folder has one, else the tokenizer config's; parsed now so a bad one stops start-up.</summary>
    private static ChatTemplate LoadChatTemplate(string directory, HfTokenizer tokenizer)
    {
        string file = Path.Combine(directory, ChatTemplate.FileName);
        bool own = File.Exists(file);
        try
        {
            var templates = own ? new Dictionary<string, string> { [ChatTemplate.DefaultName] = File.ReadAllText(file) } : tokenizer.Specials.ChatTemplates;
            return new ChatTemplate(templates, tokenizer.Specials.BosToken, tokenizer.Specials.EosToken);
        }
        catch (Templating.TemplateException ex)
        {
            throw new ModelLoadException($"{(own ? file : Path.Combine(directory, "tokenizer_config.json"))}: chat template: {ex.Message}", ex);
        }
    }

    public void Dispose() => Model.Dispose();
}
