namespace Serving.LoadTests.ScaleOut;

/// <summary>
/// The simulated fleet and its traffic. The step-time model is a replica's decode step:
/// <c>StepBaseMs + StepPerSequenceMs·batch + StepPerAdapterMs·distinct adapters in the batch</c>, plus
/// <c>AdapterLoadMs</c> for each adapter brought into a device slot during the step (the defaults are in the range
/// measured on the bench preset; set them from <c>bench engine</c> / <c>bench adapters</c> on the target hardware).
/// </summary>
internal sealed record ScaleOutOptions
{
    public int Replicas { get; init; } = 4;
    public int SlotsPerReplica { get; init; } = 8;
    public int MaxBatch { get; init; } = 32;
    public int Adapters { get; init; } = 200;
    public double ZipfS { get; init; } = 1.0;
    public int Requests { get; init; } = 20_000;
    public double RatePerSecond { get; init; } = 25;
    public int OutputTokens { get; init; } = 64;
    public double StepBaseMs { get; init; } = 20;
    public double StepPerSequenceMs { get; init; } = 1.0;
    public double StepPerAdapterMs { get; init; } = 0.5;
    public double AdapterLoadMs { get; init; } = 50;
    /// <summary>Weight of the gateway's queue scorer next to the LoRA-affinity scorer (weight 1).</summary>
    public double QueueWeight { get; init; } = 1.0;
    public ulong Seed { get; init; } = 1;

    public IEnumerable<string> Validate()
    {
        if (Replicas < 1 || SlotsPerReplica < 1 || MaxBatch < 1 || Adapters < 1 || Requests < 1 || OutputTokens < 1)
            yield return "replicas, slots, max-batch, adapters, requests and output-tokens must be at least 1";
        if (!(RatePerSecond > 0) || !(ZipfS >= 0) || !(QueueWeight >= 0))
            yield return "rate must be positive, zipf-s and queue-weight non-negative";
        if (!(StepBaseMs >= 0) || !(StepPerSequenceMs >= 0) || !(StepPerAdapterMs >= 0) || !(AdapterLoadMs >= 0))
            yield return "step and load times must be non-negative";
        if (SlotsPerReplica > MaxBatch)
            yield return $"slots ({SlotsPerReplica}) above max-batch ({MaxBatch}) can never all be in use";
    }
}
