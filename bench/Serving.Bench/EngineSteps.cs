using System.Globalization;
using System.Text.RegularExpressions;

namespace Serving.Bench;

/// <summary>
/// The server's engine-step histograms (<c>serving_engine_step_*</c> in <c>/metrics</c>) as totals, and the per-step means
/// between two scrapes: they split a throughput gap into slower steps and smaller (or more) steps.
/// </summary>
internal sealed partial record EngineSteps(double DecodeSteps, double DecodeSeconds, double PrefillSteps, double PrefillSeconds, double Sequences, double Tokens,
    double ForwardSeconds, double LogitsToHostSeconds, double SamplingSeconds, double MaskWorkSeconds, double MaskWaitSeconds,
    double PrefixQueryTokens = 0, double PrefixHitTokens = 0, TimeSpan Wall = default)
{
    public static EngineSteps None { get; } = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Share of the prompt tokens looked up in the prefix cache that it served (%), NaN when none were looked up.</summary>
    public double PrefixHitPercent => PrefixQueryTokens == 0 ? double.NaN : 100 * PrefixHitTokens / PrefixQueryTokens;

    /// <summary>Mean per step of computing structured-output token masks beside the forward pass, and of waiting for them after it (ms).</summary>
    public (double Work, double Wait) MeanMaskMs => Count == 0 ? (double.NaN, double.NaN) : (1000 * MaskWorkSeconds / Count, 1000 * MaskWaitSeconds / Count);

    public double Count => DecodeSteps + PrefillSteps;
    public double MeanDecodeMs => DecodeSteps == 0 ? double.NaN : 1000 * DecodeSeconds / DecodeSteps;
    public double MeanPrefillMs => PrefillSteps == 0 ? double.NaN : 1000 * PrefillSeconds / PrefillSteps;
    public double SequencesPerStep => Count == 0 ? double.NaN : Sequences / Count;
    public double TokensPerStep => Count == 0 ? double.NaN : Tokens / Count;

    /// <summary>Mean per step of the forward call, the wait for the device and the logits copy, and sampling (ms).</summary>
    public (double Forward, double LogitsToHost, double Sampling) MeanPartsMs => Count == 0 ? (double.NaN, double.NaN, double.NaN)
        : (1000 * ForwardSeconds / Count, 1000 * LogitsToHostSeconds / Count, 1000 * SamplingSeconds / Count);

    /// <summary>Share of the wall time the engine spent in steps.</summary>
    public double BusyPercent => Wall == default ? double.NaN : 100 * (DecodeSeconds + PrefillSeconds) / Wall.TotalSeconds;

    public static EngineSteps Scrape(HttpClient http)
    {
        string text = http.GetStringAsync("/metrics").GetAwaiter().GetResult();
        double Value(string name, string labels = "")
        {
            double total = 0;
            foreach (Match m in Sample().Matches(text))
                if (m.Groups["name"].Value == name && m.Groups["labels"].Value.Contains(labels, StringComparison.Ordinal))
                    total += double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            return total;
        }

        return new EngineSteps(
            Value("serving_engine_step_seconds_count", "phase=\"decode\""), Value("serving_engine_step_seconds_sum", "phase=\"decode\""),
            Value("serving_engine_step_seconds_count", "phase=\"prefill\""), Value("serving_engine_step_seconds_sum", "phase=\"prefill\""),
            Value("serving_engine_step_sequences_sum"), Value("serving_engine_step_tokens_sum"),
            Value("serving_engine_step_part_seconds_sum", "part=\"forward\""), Value("serving_engine_step_part_seconds_sum", "part=\"logits_to_host\""),
            Value("serving_engine_step_part_seconds_sum", "part=\"sampling\""), Value("serving_engine_step_part_seconds_sum", "part=\"mask_work\""),
            Value("serving_engine_step_part_seconds_sum", "part=\"mask_wait\""),
            Value("vllm:prefix_cache_queries_total"), Value("vllm:prefix_cache_hits_total"));
    }

    /// <summary>Two measurements pooled: counts, seconds and wall time added.</summary>
    public EngineSteps Plus(EngineSteps other) => new(
        DecodeSteps + other.DecodeSteps, DecodeSeconds + other.DecodeSeconds, PrefillSteps + other.PrefillSteps, PrefillSeconds + other.PrefillSeconds,
        Sequences + other.Sequences, Tokens + other.Tokens, ForwardSeconds + other.ForwardSeconds, LogitsToHostSeconds + other.LogitsToHostSeconds,
        SamplingSeconds + other.SamplingSeconds, MaskWorkSeconds + other.MaskWorkSeconds, MaskWaitSeconds + other.MaskWaitSeconds,
        PrefixQueryTokens + other.PrefixQueryTokens, PrefixHitTokens + other.PrefixHitTokens, Wall + other.Wall);

    public EngineSteps Since(EngineSteps before, TimeSpan wall) => new(
        DecodeSteps - before.DecodeSteps, DecodeSeconds - before.DecodeSeconds, PrefillSteps - before.PrefillSteps, PrefillSeconds - before.PrefillSeconds,
        Sequences - before.Sequences, Tokens - before.Tokens, ForwardSeconds - before.ForwardSeconds, LogitsToHostSeconds - before.LogitsToHostSeconds,
        SamplingSeconds - before.SamplingSeconds, MaskWorkSeconds - before.MaskWorkSeconds, MaskWaitSeconds - before.MaskWaitSeconds,
        PrefixQueryTokens - before.PrefixQueryTokens, PrefixHitTokens - before.PrefixHitTokens, wall);

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
