namespace Serving.Authoring.Training;

/// <summary>Hyper-parameters of <see cref="LoraTrainer"/>. Same data, options and seed give the same adapter.</summary>
public sealed record LoraTrainingOptions
{
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public IReadOnlyList<string> Targets { get; init; } = ["q_proj", "v_proj"];
    public int Steps { get; init; } = 200;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
    public ulong Seed { get; init; } = 1;

    /// <summary>Train a DoRA adapter (PEFT's <c>use_dora</c>): a magnitude vector per module beside A and B.</summary>
    public bool UseDora { get; init; }

    public void Validate()
    {
        if (Rank < 1 || Rank > 256)
            throw new ArgumentException("rank must be within 1..256");
        if (!(Alpha > 0))
            throw new ArgumentException("alpha must be positive");
        if (Targets.Count == 0)
            throw new ArgumentException("at least one target module is required");
        if (Steps < 1 || BatchSize < 1)
            throw new ArgumentException("steps and batch size must be at least 1");
        if (!(LearningRate > 0))
            throw new ArgumentException("the learning rate must be positive");
    }
}
