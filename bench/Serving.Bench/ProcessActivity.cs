using System.Diagnostics;

namespace Serving.Bench;

/// <summary>
/// The process's garbage collections and CPU time between two points. The servers, the engine loop and the benchmark's
/// clients share the process: a GC pause stops the engine thread mid-step too, so a pause share that grows with the tokens
/// streamed is a per-row cost of every step; and where the engine is bound by the host (a GPU's steps), the other threads'
/// CPU time competes with the one thread that issues the forward pass.
/// </summary>
internal sealed record ProcessActivity(TimeSpan Pause, int Gen0, int Gen1, int Gen2, TimeSpan Cpu, TimeSpan Wall = default)
{
    public static ProcessActivity None { get; } = new(TimeSpan.Zero, 0, 0, 0, TimeSpan.Zero);

    public static ProcessActivity Now()
    {
        using var process = Process.GetCurrentProcess();
        return new(GC.GetTotalPauseDuration(), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), process.TotalProcessorTime);
    }

    public double PausePercent => Wall == default ? double.NaN : 100 * Pause.TotalSeconds / Wall.TotalSeconds;

    /// <summary>CPU time over wall time: how many cores the whole process kept busy on average.</summary>
    public double CoresBusy => Wall == default ? double.NaN : Cpu.TotalSeconds / Wall.TotalSeconds;

    /// <summary>Collections of any generation per 1000 tokens processed (a gen-1 or gen-2 collection counts once).</summary>
    public double PerThousand(double tokens) => tokens <= 0 ? double.NaN : 1000 * Gen0 / tokens;

    public ProcessActivity Since(ProcessActivity before, TimeSpan wall) =>
        new(Pause - before.Pause, Gen0 - before.Gen0, Gen1 - before.Gen1, Gen2 - before.Gen2, Cpu - before.Cpu, wall);

    public ProcessActivity Plus(ProcessActivity other) =>
        new(Pause + other.Pause, Gen0 + other.Gen0, Gen1 + other.Gen1, Gen2 + other.Gen2, Cpu + other.Cpu, Wall + other.Wall);
}
