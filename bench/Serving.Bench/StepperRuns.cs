using System.Diagnostics;
using Serving.Engine.Generation;
using Serving.Contracts.Generation;

namespace Serving.Bench;

internal static class StepperRuns
{
    /// <summary>
    /// One step in which every unfinished sequence feeds all its uncached tokens (whole prompts, then one token each);
    /// returns one entry per unfinished sequence, in order. Sequence i of <paramref name="sequences"/> keeps its KV in
    /// the cache's partition <paramref name="firstPartition"/> + i. Only for sequences that run through this method alone:
    /// then a sequence that has generated has cached everything but its last token.
    /// </summary>
    public static IReadOnlyList<TokenEvent?> RunAll(this GenerationStepper stepper, IReadOnlyList<SequenceState> sequences, int firstPartition = 0) =>
        stepper.Run(sequences.Select((s, i) => (s, i)).Where(x => !x.s.IsFinished).Select(x =>
        {
            int start = x.s.GeneratedTokens.Count == 0 ? 0 : x.s.TotalTokens - 1;
            return new StepRow(x.s, start, x.s.TotalTokens - start, stepper.Cache.Partition(firstPartition + x.i));
        }).ToList());

    /// <summary>
    /// Steps every stepper's sequences in turn, one step each round (so machine drift falls on all alike): three rounds of
    /// warm-up, then <paramref name="steps"/> timed rounds; each stepper's step times in milliseconds, in order.
    /// </summary>
    public static List<double>[] Alternate(IReadOnlyList<GenerationStepper> steppers, IReadOnlyList<IReadOnlyList<SequenceState>> sequences, int steps)
    {
        for (int warm = 0; warm < 3; warm++)
            for (int i = 0; i < steppers.Count; i++)
                steppers[i].RunAll(sequences[i]);
        var times = steppers.Select(_ => new List<double>()).ToArray();
        for (int s = 0; s < steps; s++)
            for (int i = 0; i < steppers.Count; i++)
            {
                long start = Stopwatch.GetTimestamp();
                steppers[i].RunAll(sequences[i]);
                times[i].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }

        return times;
    }
}
