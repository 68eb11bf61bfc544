using Serving.Contracts.Generation;

namespace Serving.Engine.Generation;

/// <summary>
/// An embedding sequence's pooled prompt states so far, for pooling that needs more than the last token
/// (<see cref="PromptPooling.Mean"/>, <see cref="PromptPooling.Cls"/>): the sum of the final hidden states of positions
/// [0, <see cref="Through"/>) for mean, the first position's for CLS. Chunks arrive in order; one starting at 0 starts over
/// (a preempted sequence computes its prompt again).
/// </summary>
internal sealed class PromptPool(PromptPooling pooling, int promptLength)
{
    private float[]? _sum;

    /// <summary>The prompt positions pooled so far.</summary>
    public int Through { get; private set; }

    /// <summary>
    /// Adds the chunk of positions [<paramref name="start"/>, start + <paramref name="count"/>) whose states sum to
    /// <paramref name="chunk"/> (CLS: null when it holds no first position).
    /// </summary>
    public void Add(float[]? chunk, int start, int count)
    {
        _sum = Combined(chunk, start);
        Through = start + count;
    }

    /// <summary>The embedding once the last chunk, [<paramref name="start"/>, prompt end), sums to <paramref name="chunk"/> (CLS: null when it holds no first position); nothing changes.</summary>
    public float[] Finish(float[]? chunk, int start)
    {
        if (pooling == PromptPooling.Cls)
            return start == 0 ? chunk! : _sum ?? throw new InvalidOperationException("the prompt's first position was never pooled");
        var sum = Combined(chunk, start);
        var mean = new float[sum.Length];
        for (int i = 0; i < sum.Length; i++)
            mean[i] = sum[i] / promptLength;
        return mean;
    }

    private float[] Combined(float[]? chunk, int start)
    {
        if (start == 0)
            return chunk ?? throw new ArgumentException("a chunk from the first position holds it");
        if (start != Through)
            throw new InvalidOperationException($"prompt positions pooled through {Through}, then a chunk from {start}: a prompt pooled from every position is computed whole and in order");
        if (pooling == PromptPooling.Cls || chunk is null)
            return _sum!;
        var sum = (float[])_sum!.Clone();
        for (int i = 0; i < sum.Length; i++)
            sum[i] += chunk[i];
        return sum;
    }
}
