namespace Serving.Engine.Tokenization;

public enum TokenizerKind
{
    /// <summary>GPT-2 / Llama-3 / Qwen2: regex pre-tokenizer, BPE over bytes mapped by <see cref="ByteLevelAlphabet"/>.</summary>
    ByteLevelBpe,

    /// <summary>Llama-2 / Mistral: spaces become '▁', BPE over characters, unknown characters fall back to &lt;0xXX&gt; byte tokens.</summary>
    SentencePieceBpe,
}
