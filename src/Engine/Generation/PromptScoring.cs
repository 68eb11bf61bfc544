using Serving.Contracts.Generation;
using Serving.Engine.Sampling;

namespace Serving.Engine.Generation;

/// <summary>
/// A step's plan for rows that score their prompt (<see cref="SamplingParams.PromptLogprobs"/>): which packed tokens' logits
/// the step needs — each scored position's, then every row's last token — and, once they are computed, each prompt
/// token's score. The logits of the token at position p score prompt token p + 1.
/// </summary>
internal sealed class PromptScoring
{
    private readonly List<(int Row, int Position, int LogitRow)> _scored;

    private PromptScoring(List<int> logitTokens, int[] lastRow, List<(int, int, int)> scored)
    {
        LogitTokens = logitTokens;
        LastRow = lastRow;
        _scored = scored;
    }

    /// <summary>Packed token indices whose logits the step computes, in the order of the logits' rows.</summary>
    public IReadOnlyList<int> LogitTokens { get; }

    /// <summary>For each step row, the logits row of its last token (what it samples from).</summary>
    public int[] LastRow { get; }

    /// <summary>The plan, or null when no row scores a prompt token this step (the step then computes last tokens only).</summary>
    public static PromptScoring? Plan(IReadOnlyList<StepRow> rows)
    {
        if (!rows.Any(r => r.Sequence.Sampling.PromptLogprobs is not null && r.StartPosition < r.Sequence.PromptTokens.Count - 1))
            return null;
        var tokens = new List<int>();
        var last = new int[rows.Count];
        var scored = new List<(int, int, int)>();
        int offset = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            if (row.Sequence.Sampling.PromptLogprobs is not null)
            {
                int end = Math.Min(row.EndPosition, row.Sequence.PromptTokens.Count - 1);
                for (int p = row.StartPosition; p < end; p++)
                {
                    scored.Add((i, p + 1, tokens.Count));
                    tokens.Add(offset + p - row.StartPosition);
                }
            }

            last[i] = tokens.Count;
            tokens.Add(offset + row.TokenCount - 1);
            offset += row.TokenCount;
        }

        return new PromptScoring(tokens, last, scored);
    }

    /// <summary>
    /// Every scored prompt token's score from the step's float32 logits <c>[LogitTokens.Count, vocab]</c>; nothing is
    /// recorded yet (<see cref="Record"/>), so a step that fails after this leaves the sequences as they were.
    /// </summary>
    /// <remarks>
    /// A chunk of up to the prefill budget's tokens each reads a whole vocabulary row three times (normaliser, rank,
    /// alternatives): spread over the OpenMP team like sampling, so one scoring request holds the step far less.
    /// </remarks>
    public unsafe PromptTokenLogprob[] Score(float* logits, int vocab, IReadOnlyList<StepRow> rows)
    {
        var scores = new PromptTokenLogprob[_scored.Count];
        Kernels.OpenMpTeam.For(_scored.Count, new ScoreRows(logits, vocab, rows, _scored, scores));
        return scores;
    }

    /// <summary>Part i scores entry i of the plan into scores[i].</summary>
    private readonly unsafe struct ScoreRows(float* logits, int vocab, IReadOnlyList<StepRow> rows, List<(int Row, int Position, int LogitRow)> scored,
        PromptTokenLogprob[] scores) : Kernels.IParallelPart
    {
        public void Run(int i)
        {
            var (row, position, logitRow) = scored[i];
            var sequence = rows[row].Sequence;
            scores[i] = TokenSampler.Score(new ReadOnlySpan<float>(logits + (long)logitRow * vocab, vocab), sequence.PromptTokens[position],
                sequence.Sampling.PromptLogprobs!.Value);
        }
    }

    /// <summary>Records <paramref name="scores"/> (from <see cref="Score"/>) in their sequences.</summary>
    public void Record(PromptTokenLogprob[] scores, IReadOnlyList<StepRow> rows)
    {
        for (int i = 0; i < _scored.Count; i++)
            rows[_scored[i].Row].Sequence.ScorePromptToken(_scored[i].Position, scores[i]);
    }
}
