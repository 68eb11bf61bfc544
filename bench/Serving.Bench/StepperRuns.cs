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
}
