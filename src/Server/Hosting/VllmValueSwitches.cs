using System.Globalization;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM switches with values this server takes one way only: the parallel sizes (one device serves the model), the KV
/// cache's dtype (the compute dtype), the GPU memory fraction (the KV cache's memory is <c>--kv-cache-tokens</c>), the
/// load format (safetensors), the adapters' dtype, the tokenizer mode, the swap space (preemption recomputes), the logged
/// prompt length and uvicorn's log level —
/// accepted with the values that mean what this server does, refused naming why otherwise — and <c>--api-key</c>: each
/// key an admin's (<c>Serving:Auth:AdminKeys</c>), as vLLM's one key opens every endpoint; without the switch,
/// <c>VLLM_API_KEY</c> from the environment as vLLM reads it.
/// </summary>
public static class VllmValueSwitches
{
    public const string ApiKey = "--api-key", ApiKeyVariable = "VLLM_API_KEY";

    /// <summary>The shortest key accepted: a shorter one can be guessed (the same bound as <c>Serving:Auth:Keys</c>).</summary>
    public const int MinimumKeyLength = 16;

    /// <summary>Per switch: whether a value is accepted, and what this server does with that setting.</summary>
    public static readonly IReadOnlyDictionary<string, (Func<string, bool> Accepts, string Means)> Fixed =
        new Dictionary<string, (Func<string, bool>, string)>(StringComparer.Ordinal)
        {
            ["--tensor-parallel-size"] = (One, "1: one device serves the whole model"),
            ["-tp"] = (One, "1: one device serves the whole model"),
            ["--pipeline-parallel-size"] = (One, "1: one device serves the whole model"),
            ["-pp"] = (One, "1: one device serves the whole model"),
            ["--kv-cache-dtype"] = (v => v == "auto", "auto: the KV cache is kept in the compute dtype (--dtype)"),
            ["--gpu-memory-utilization"] = (IsFraction,
                "a fraction in (0, 1], and ignores it: the KV cache's memory is --kv-cache-tokens (default: what --max-num-seqs sequences of --max-model-len hold at once)"),
            ["--load-format"] = (v => v is "auto" or "safetensors", "auto or safetensors: a folder's *.safetensors, never pickled weights"),
            ["--lora-dtype"] = (v => v == "auto", "auto: adapters compute in the model's dtype (--dtype)"),
            ["--tokenizer-mode"] = (v => v is "auto" or "hf", "auto: the folder's tokenizer.json, read by this server's own tokenizer"),
            ["--swap-space"] = (IsNonNegative, "a size in GiB, and ignores it: a preempted sequence is recomputed, never swapped to host memory"),
            ["--max-log-len"] = (IsNonNegative, "a length, and ignores it: requests' contents are never logged"),
            ["--uvicorn-log-level"] = (v => v is "critical" or "error" or "warning" or "info" or "debug" or "trace",
                "a log level, and ignores it: the HTTP server logs at Logging:LogLevel:Microsoft.AspNetCore (Warning)"),
        };

    /// <summary>Switches accepted with a value that changes nothing here, each with why; logged as a warning at start-up.</summary>
    public static readonly IReadOnlySet<string> Ignored = new HashSet<string>(StringComparer.Ordinal)
    {
        "--gpu-memory-utilization", "--swap-space", "--max-log-len", "--uvicorn-log-level",
    };

    private static bool One(string value) => value == "1";

    private static bool IsNonNegative(string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f >= 0 && double.IsFinite(f);

    private static bool IsFraction(string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f > 0 && f <= 1;

    /// <summary>The problem with <paramref name="key"/> as an API key, or null.</summary>
    public static string? KeyProblem(string key) =>
        key.Length < MinimumKeyLength ? $"{ApiKey}: a key of {key.Length} characters can be guessed; use at least {MinimumKeyLength}"
        : key.Any(char.IsWhiteSpace) ? $"{ApiKey}: a key holds no whitespace" : null;

    /// <summary>The settings <c>--api-key</c> values (or else <see cref="ApiKeyVariable"/>) stand for.</summary>
    public static IEnumerable<string> AdminKeySettings(IReadOnlyList<string> keys, Func<string, string?> environment)
    {
        var all = keys.Count > 0 ? keys : environment(ApiKeyVariable) is { Length: > 0 } fromEnvironment ? [fromEnvironment] : [];
        for (int i = 0; i < all.Count; i++)
        {
            yield return $"--Serving:Auth:AdminKeys:{i}";
            yield return all[i];
        }
    }
}
