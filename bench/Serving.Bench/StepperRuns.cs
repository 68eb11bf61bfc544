using Serving.Engine.Generation;

namespace Serving.Bench;

internal static class StepperRuns
{
    /// <summary>One step in which every unfinished sequence feeds all its uncached tokens (whole prompts, then one token each).</summary>
    public static IReadOnlyList<TokenEvent?> RunAll(this GenerationStepper stepper, IReadOnlyList<SequenceState> sequences) =>
        stepper.Run(sequences.Where(s => !s.IsFinished).Select(s => (s, s.TotalTokens - s.CachedTokens)).ToList());
}
