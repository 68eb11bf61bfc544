using Serving.Contracts.Generation;
using Serving.Engine.Model;

namespace Serving.Engine.Generation;

/// <summary>
/// A step's plan for rows of embedding sequences that pool more than their last token (<see cref="PromptPooling.Mean"/>,
/// <see cref="PromptPooling.Cls"/>): which packed token ranges the forward pass sums (a mean row's every token, a CLS
/// row's first when it starts the prompt), then each finishing row's embedding and each other row's chunk recorded in its
/// sequence's <see cref="PromptPool"/> — only once the step can no longer fail.
/// </summary>
internal sealed class PromptPoolingPlan
{
    private readonly List<(int Row, int? Range)> _rows;

    private PromptPoolingPlan(List<(int Start, int Count)> ranges, List<(int, int?)> rows)
    {
        Ranges = ranges;
        _rows = rows;
    }

    /// <summary>Packed token ranges (first token, count) the pass sums, in the order of its pooled rows.</summary>
    public IReadOnlyList<(int Start, int Count)> Ranges { get; }

    /// <summary>Whether <paramref name="row"/> advances the prompt of a sequence pooling more than its last token.</summary>
    public static bool Pools(StepRow row) => row.Sequence is { Sampling: { EmbedPrompt: true, Pooling: not PromptPooling.LastToken }, GeneratedTokens.Count: 0 };

    /// <summary>The plan, or null when no row pools this step.</summary>
    public static PromptPoolingPlan? Plan(IReadOnlyList<StepRow> rows)
    {
        List<(int Start, int Count)>? ranges = null;
        List<(int, int?)>? pooled = null;
        int offset = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            if (Pools(row))
            {
                ranges ??= [];
                bool mean = row.Sequence.Sampling.Pooling == PromptPooling.Mean;
                int? range = mean || row.StartPosition == 0 ? ranges.Count : null;
                if (range is not null)
                    ranges.Add((offset, mean ? row.TokenCount : 1));
                (pooled ??= []).Add((i, range));
            }

            offset += row.TokenCount + row.DraftCount;
        }

        return pooled is null ? null : new PromptPoolingPlan(ranges!, pooled);
    }

    /// <summary>The embedding of each pooling row that completes its prompt, by step row; nothing changes.</summary>
    public Dictionary<int, float[]> Finish(HiddenStateCapture hidden, IReadOnlyList<StepRow> rows)
    {
        var embeddings = new Dictionary<int, float[]>();
        foreach (var (row, range) in _rows)
            if (rows[row].EmitsToken)
                embeddings[row] = rows[row].Sequence.Pool!.Finish(range is int r ? hidden.PooledRow(r) : null, rows[row].StartPosition);
        return embeddings;
    }

    /// <summary>Records each other pooling row's chunk in its sequence.</summary>
    public void Record(HiddenStateCapture hidden, IReadOnlyList<StepRow> rows)
    {
        foreach (var (row, range) in _rows)
            if (!rows[row].EmitsToken)
                rows[row].Sequence.Pool!.Add(range is int r ? hidden.PooledRow(r) : null, rows[row].StartPosition, rows[row].TokenCount);
    }
}
