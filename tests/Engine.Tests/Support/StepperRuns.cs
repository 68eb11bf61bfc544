using Serving.Engine.Generation;

namespace Serving.Engine.Tests.Support;

internal static class StepperRuns
{
    /// <summary>
    /// One step in which every unfinished sequence feeds all its uncached tokens (whole prompts, then one token each);
    /// returns one entry per unfinished sequence, in order.
    /// </summary>
    public static IReadOnlyList<TokenEvent?> RunAll(this GenerationStepper stepper, IReadOnlyList<SequenceState> sequences) =>
        stepper.Run(sequences.Where(s => !s.IsFinished).Select(s => (s, s.TotalTokens - s.CachedTokens)).ToList());
}
