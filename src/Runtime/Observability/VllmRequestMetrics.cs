using System.Diagnostics.Metrics;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Observability;

/// <summary>
/// vLLM's request metrics under vLLM's names, buckets and <c>model_name</c> label, so the dashboards and alerts a
/// platform team runs against vLLM (its Grafana dashboard, latency SLO rules) read this server unchanged: latencies per
/// request phase (queue, prefill, decode, inference, end to end), time to first token and between tokens, prompt and
/// generation token counts, finished requests by reason and preemptions. Phases as vLLM's v1 engine defines them:
/// queue = arrival → admission, prefill = admission → first token, decode = first → last token, inference = admission →
/// last token.
/// </summary>
public sealed class VllmRequestMetrics
{
    private static readonly double[] FirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
    private static readonly double[] TokenGapBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
    private static readonly double[] RequestBuckets = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
    private static readonly double[] TokenCountBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

    private readonly Histogram<double> _firstToken, _interToken, _timePerOutputToken, _requestTimePerOutputToken;
    private readonly Histogram<double> _e2e, _queue, _prefill, _decode, _inference, _promptTokensPerRequest, _generationTokensPerRequest, _maxTokens;
    private readonly Counter<long> _promptTokens, _generationTokens, _success;
    private readonly Counter<long> _drafts, _draftTokens, _acceptedTokens, _acceptedPerPosition;

    internal VllmRequestMetrics(Meter meter, Func<double> preemptions)
    {
        Histogram<double> H(string name, string help, double[] buckets) =>
            meter.CreateHistogram(name, unit: null, description: help, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });
        _firstToken = H("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", FirstTokenBuckets);
        _interToken = H("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", TokenGapBuckets);
        _timePerOutputToken = H("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds (the older name of inter-token latency).", TokenGapBuckets);
        _requestTimePerOutputToken = H("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", TokenGapBuckets);
        _e2e = H("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", RequestBuckets);
        _queue = H("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", RequestBuckets);
        _prefill = H("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", RequestBuckets);
        _decode = H("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", RequestBuckets);
        _inference = H("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", RequestBuckets);
        _promptTokensPerRequest = H("vllm:request_prompt_tokens", "Number of prefill tokens processed.", TokenCountBuckets);
        _generationTokensPerRequest = H("vllm:request_generation_tokens", "Number of generation tokens processed.", TokenCountBuckets);
        _maxTokens = H("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", TokenCountBuckets);
        _promptTokens = meter.CreateCounter<long>("vllm:prompt_tokens", description: "Number of prefill tokens processed.");
        _generationTokens = meter.CreateCounter<long>("vllm:generation_tokens", description: "Number of generation tokens processed.");
        _success = meter.CreateCounter<long>("vllm:request_success", description: "Count of successfully processed requests.");
        _drafts = meter.CreateCounter<long>("vllm:spec_decode_num_drafts", description: "Number of spec decoding drafts.");
        _draftTokens = meter.CreateCounter<long>("vllm:spec_decode_num_draft_tokens", description: "Number of draft tokens.");
        _acceptedTokens = meter.CreateCounter<long>("vllm:spec_decode_num_accepted_tokens", description: "Number of accepted tokens.");
        _acceptedPerPosition = meter.CreateCounter<long>("vllm:spec_decode_num_accepted_tokens_per_pos",
            description: "Accepted tokens per draft position.");
        meter.CreateObservableCounter("vllm:num_preemptions", () => new Measurement<double>(preemptions(), Model),
            description: "Cumulative number of preemption from the engine.");
    }

    /// <summary>The served model's name, every sample's <c>model_name</c> (set once the model is loaded).</summary>
    public string ModelName { get; set; } = "";

    private KeyValuePair<string, object?> Model => new("model_name", ModelName);

    public void FirstToken(double seconds) => _firstToken.Record(seconds, Model);

    public void InterToken(double seconds)
    {
        _interToken.Record(seconds, Model);
        _timePerOutputToken.Record(seconds, Model);
    }

    /// <summary>A request that ended with its last token (stop or length), its phases' ends as stopwatch timestamps.</summary>
    public void Finished(FinishReason reason, int promptTokens, int generated, int maxTokens, long arrived, long admitted, long firstToken, long lastToken)
    {
        var model = Model;
        _success.Add(1, model, new("finished_reason", reason == FinishReason.Stop ? "stop" : "length"));
        Counts(promptTokens, generated, maxTokens);
        _e2e.Record(Seconds(arrived, lastToken), model);
        _queue.Record(Seconds(arrived, admitted), model);
        _prefill.Record(Seconds(admitted, firstToken), model);
        _decode.Record(Seconds(firstToken, lastToken), model);
        _inference.Record(Seconds(admitted, lastToken), model);
        if (generated > 1)
            _requestTimePerOutputToken.Record(Seconds(firstToken, lastToken) / (generated - 1), model);
    }

    /// <summary>One row's drafts verified in a step: <paramref name="accepted"/> of <paramref name="planned"/> taken (the leading ones).</summary>
    public void Drafted(int planned, int accepted)
    {
        var model = Model;
        _drafts.Add(1, model);
        _draftTokens.Add(planned, model);
        _acceptedTokens.Add(accepted, model);
        for (int position = 0; position < accepted; position++)
            _acceptedPerPosition.Add(1, model, new("position", position.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <summary>A request that ended otherwise (its caller went away, it timed out or failed): vLLM's <c>abort</c>.</summary>
    public void Aborted(int promptTokens, int generated, int maxTokens)
    {
        _success.Add(1, Model, new("finished_reason", "abort"));
        Counts(promptTokens, generated, maxTokens);
    }

    private void Counts(int promptTokens, int generated, int maxTokens)
    {
        var model = Model;
        _promptTokens.Add(promptTokens, model);
        _generationTokens.Add(generated, model);
        _promptTokensPerRequest.Record(promptTokens, model);
        _generationTokensPerRequest.Record(generated, model);
        _maxTokens.Record(maxTokens, model);
    }

    private static double Seconds(long from, long to) => System.Diagnostics.Stopwatch.GetElapsedTime(from, Math.Max(from, to)).TotalSeconds;
}
