using Serving.Contracts.Safetensors;

namespace Serving.Authoring.Synthetic;

/// <summary>What <see cref="SyntheticModelWriter"/> generates. Same spec, same bytes.</summary>
public sealed record SyntheticModelSpec
{
    public ModelPreset Preset { get; init; } = ModelPreset.Tiny;
    public ulong Seed { get; init; } = 1;
    public string Architecture { get; init; } = "LlamaForCausalLM";
    public SafetensorsDtype DiskDtype { get; init; } = SafetensorsDtype.F32;
    public int Shards { get; init; } = 1;
    public bool TieWordEmbeddings { get; init; }

    /// <summary>
    /// A folder whose <c>tokenizer.json</c> and <c>tokenizer_config.json</c> (a real checkpoint's) are copied instead of
    /// the generated GPT-2 ones; the vocabulary is then <see cref="Vocab"/> (a checkpoint's padded size) or the
    /// tokenizer's highest id + 1, and end of sequence its <c>eos_token</c>.
    /// </summary>
    public string? TokenizerFrom { get; init; }

    /// <summary>
    /// Saved as an embedding model ships (Qwen3-Embedding): the bare transformer's tensors (no <c>model.</c> prefix, no
    /// lm_head; the same values as without this), and sentence-transformers' <c>modules.json</c> with last-token pooling
    /// and normalisation.
    /// </summary>
    public bool EmbeddingModel { get; init; }

    /// <summary>
    /// The model saved as a multimodal checkpoint around it ships (Gemma 3: <c>Gemma3ForConditionalGeneration</c>, Mistral:
    /// <c>Mistral3ForConditionalGeneration</c>, Llama: <c>LlavaForConditionalGeneration</c>): the language model's
    /// fields under <c>text_config</c>, its tensors under this prefix (<c>language_model.model.</c> as Google uploaded
    /// them, <c>model.language_model.</c> as transformers 4.52+ saves them), beside a (token) vision tower and projector.
    /// The same language-model values as without it.
    /// </summary>
    public string? MultimodalPrefix { get; init; }

    /// <summary>A mixture-of-experts model's experts per layer (Mixtral, Qwen3-MoE).</summary>
    public int Experts { get; init; } = 4;

    /// <summary>A mixture-of-experts model's experts per token.</summary>
    public int ExpertsPerToken { get; init; } = 2;

    /// <summary>A mixture-of-experts model's expert width (default: the preset's intermediate size for Mixtral, half of it for Qwen3-MoE).</summary>
    public int? ExpertIntermediate { get; init; }

    /// <summary>gpt-oss: its experts stored as MXFP4 blocks and scales, as OpenAI ships them (else bf16/f32 tensors).</summary>
    public bool Mxfp4Experts { get; init; }

    /// <summary>config.json's <c>partial_rotary_factor</c> (Phi-4-mini's 0.75): RoPE over each head's first dimensions only.</summary>
    public double? PartialRotaryFactor { get; init; }

    /// <summary>Head width override (default hidden / heads); Qwen3's small models, for one, have heads · head_dim ≠ hidden.</summary>
    public int? HeadDim { get; init; }

    /// <summary>Vocabulary size override (default: the preset's, or the full GPT-2 vocabulary + 3 special tokens).</summary>
    public int? Vocab { get; init; }
}
