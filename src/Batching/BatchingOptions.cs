namespace Serving.Batching;

/// <summary><c>Serving:Batching</c>: how the engine loop forms batches.</summary>
internal sealed class BatchingOptions
{
    public const string Section = "Serving:Batching";

    public AdmissionPolicy Policy { get; set; } = AdmissionPolicy.Continuous;
}
