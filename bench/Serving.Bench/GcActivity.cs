namespace Serving.Bench;

/// <summary>
/// The process's garbage collections between two points: pause time and collection counts. The servers, the engine loop
/// and the benchmark's clients share the process, and a pause stops the engine thread mid-step too, so a GC share that
/// grows with the tokens streamed is a per-row cost of every step.
/// </summary>
internal sealed record GcActivity(TimeSpan Pause, int Gen0, int Gen1, int Gen2, TimeSpan Wall = default)
{
    public static GcActivity None { get; } = new(TimeSpan.Zero, 0, 0, 0);

    public static GcActivity Now() => new(GC.GetTotalPauseDuration(), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));

    public double PausePercent => Wall == default ? double.NaN : 100 * Pause.TotalSeconds / Wall.TotalSeconds;

    /// <summary>Collections of any generation per 1000 tokens processed (a gen-1 or gen-2 collection counts once).</summary>
    public double PerThousand(double tokens) => tokens <= 0 ? double.NaN : 1000 * Gen0 / tokens;

    public GcActivity Since(GcActivity before, TimeSpan wall) =>
        new(Pause - before.Pause, Gen0 - before.Gen0, Gen1 - before.Gen1, Gen2 - before.Gen2, wall);

    public GcActivity Plus(GcActivity other) => new(Pause + other.Pause, Gen0 + other.Gen0, Gen1 + other.Gen1, Gen2 + other.Gen2, Wall + other.Wall);
}
