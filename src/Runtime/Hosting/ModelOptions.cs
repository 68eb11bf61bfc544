namespace Serving.Runtime.Hosting;

/// <summary>
/// <c>Serving:Model</c>: which model to serve and how. Command line: <c>--model</c>, <c>--dtype</c>, <c>--device</c>.
/// </summary>
public sealed class ModelOptions
{
    public const string Section = "Serving:Model";

    /// <summary>HF model folder; empty serves the generated demo model.</summary>
    public string? Path { get; set; }

    /// <summary>The id clients use in <c>model</c>; defaults to the folder name.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// More names <c>model</c> may give the base model (vLLM's <c>--served-model-name NAME ALIAS…</c>): each is listed by
    /// <c>/v1/models</c> and answers as the base model; none may be an adapter's name.
    /// </summary>
    public List<string> Aliases { get; set; } = [];

    /// <summary>
    /// A folder whose tokenizer (tokenizer.json, tokenizer_config.json, chat_template.jinja) is served instead of the model
    /// folder's (vLLM's <c>--tokenizer</c>); null: the model folder's.
    /// </summary>
    public string? Tokenizer { get; set; }

    /// <summary>
    /// vLLM's <c>--seed</c>: requests that name no <c>seed</c> take theirs, in arrival order, from a generator seeded with it,
    /// so the same requests sent in the same order to a fresh server sample the same tokens (however they are batched).
    /// Null: each such request's sampling draws from the OS's entropy, which no other tenant can predict.
    /// </summary>
    public long? Seed { get; set; }

    /// <summary>
    /// vLLM's <c>--hf-overrides</c>: a JSON object laid over config.json before it is read (objects merged field by field);
    /// null: none.
    /// </summary>
    public string? HfOverrides { get; set; }

    /// <summary><see cref="HfOverrides"/> parsed; null when none or not a JSON object (the validator names that).</summary>
    internal System.Text.Json.Nodes.JsonObject? ParsedHfOverrides()
    {
        if (string.IsNullOrWhiteSpace(HfOverrides))
            return null;
        try
        {
            return System.Text.Json.Nodes.JsonNode.Parse(HfOverrides) as System.Text.Json.Nodes.JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The chat template to serve instead of the checkpoint's (vLLM's <c>--chat-template</c>): a Jinja file's path, or the
    /// template itself (a text with <c>{{</c> or <c>{%</c> that is no file's path). Parsed at start-up.
    /// </summary>
    public string? ChatTemplate { get; set; }

    /// <summary>
    /// How a message's content reaches the chat template (vLLM's <c>--chat-template-content-format</c>): <c>string</c>, its
    /// text parts joined by newlines; <c>openai</c>, a list of <c>{"type": "text", "text"}</c> parts; <c>auto</c>, parts
    /// for a template that loops over a message's content (Gemma 3's, Llama 4's), else a string — as vLLM decides.
    /// </summary>
    public string ChatTemplateContentFormat { get; set; } = "auto";

    /// <summary>Where requests' sampling defaults come from: <c>auto</c>, <c>vllm</c> or a folder (<see cref="GenerationConfigOption"/>).</summary>
    public string GenerationConfig { get; set; } = GenerationConfigOption.Auto;

    /// <summary>Sampling defaults over the generation config's (vLLM's <c>--override-generation-config</c>).</summary>
    public GenerationOverrides GenerationOverrides { get; set; } = new();

    public string Dtype { get; set; } = "auto";
    public string Device { get; set; } = "cpu";

    /// <summary>
    /// <c>none</c>, or <c>int8</c>: the projections and lm_head quantized at load, per output row (CPU only; half of bf16's
    /// weight bytes, so a latency-bound decode step reads half as much).
    /// </summary>
    public string Quantization { get; set; } = "none";

    /// <summary>
    /// The most log-probabilities a request may ask for per token (<c>logprobs</c>, <c>top_logprobs</c>,
    /// <c>prompt_logprobs</c>; vLLM's <c>--max-logprobs</c>); up to 1,024.
    /// </summary>
    public int MaxLogprobs { get; set; } = 20;

    /// <summary>Sequences decoded together in one step (KV cache rows).</summary>
    public int MaxSequences { get; set; } = 8;

    /// <summary>Longest prompt + completion, in tokens (capped by the model's max_position_embeddings).</summary>
    public int MaxContext { get; set; } = 2048;

    /// <summary>Where the demo model is generated on first start; default: $XDG_CACHE_HOME/serving or ~/.cache/serving.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>Threads libtorch may use on CPU; 0 = all cores.</summary>
    public int CpuThreads { get; set; }

    /// <summary>
    /// Seconds between returns of the C heap's free pages to the OS (see <see cref="NativeHeapTrimmer"/>); 0 disables.
    /// </summary>
    public double NativeHeapTrimSeconds { get; set; } = 10;
}
