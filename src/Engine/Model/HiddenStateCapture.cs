using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Asks <see cref="LlamaModel.Forward"/> for the final hidden states it computes logits from: after the final RMSNorm,
/// the lm_head's input, one row per logits row in the same order — what a decoder embedding model (Qwen3-Embedding,
/// e5-mistral) pools.
/// </summary>
/// <param name="pooledRanges">
/// Packed token ranges (first token, count) whose final hidden states the pass also sums, each into a row of
/// <see cref="Pooled"/>: what mean and first-token pooling need of a prompt computed in chunks.
/// </param>
public sealed class HiddenStateCapture(IReadOnlyList<(int Start, int Count)>? pooledRanges = null) : IDisposable
{
    /// <summary><c>[logits rows, hidden]</c> float32 on the host, once the forward pass ran; null before.</summary>
    public Tensor? Rows { get; internal set; }

    /// <summary>The ranges to sum (see the constructor); empty: none.</summary>
    public IReadOnlyList<(int Start, int Count)> PooledRanges { get; } = pooledRanges ?? [];

    /// <summary><c>[ranges, hidden]</c> float32 on the host: each range's final hidden states summed; null when there are no ranges.</summary>
    public Tensor? Pooled { get; internal set; }

    /// <summary>The packed token indices of <see cref="PooledRanges"/>, range after range: the rows <see cref="RecordPooled"/> is given.</summary>
    internal Tensor PooledTokens(Device device) =>
        tensor(PooledRanges.SelectMany(r => Enumerable.Range(r.Start, r.Count)).Select(t => (long)t).ToArray(), ScalarType.Int64, device);

    /// <summary>Sums <paramref name="states"/> <c>[Σ counts, hidden]</c> (the final-normed states of <see cref="PooledTokens"/>) per range into <see cref="Pooled"/>.</summary>
    internal void RecordPooled(Tensor states)
    {
        using var scope = NewDisposeScope();
        var wide = states.to(ScalarType.Float32);
        var sums = new Tensor[PooledRanges.Count];
        for (int i = 0, first = 0; i < sums.Length; first += PooledRanges[i].Count, i++)
            sums[i] = wide.narrow(0, first, PooledRanges[i].Count).sum(0L);   // 0L: a plain 0 would bind as a ScalarType, summing everything
        Pooled = stack(sums).to(CPU, copy: true).DetachFromDisposeScope();
    }

    /// <summary>Range <paramref name="range"/>'s summed hidden states.</summary>
    public unsafe float[] PooledRow(int range)
    {
        var pooled = Pooled ?? throw new InvalidOperationException("the forward pass has not run");
        int hidden = (int)pooled.size(1);
        return new ReadOnlySpan<float>((float*)Runtime.CpuTensorMemory.Address(pooled) + (long)range * hidden, hidden).ToArray();
    }

    /// <summary>Logits row <paramref name="row"/>'s hidden state.</summary>
    public unsafe float[] Row(int row)
    {
        var rows = Rows ?? throw new InvalidOperationException("the forward pass has not run");
        int hidden = (int)rows.size(1);
        return new ReadOnlySpan<float>((float*)Runtime.CpuTensorMemory.Address(rows) + (long)row * hidden, hidden).ToArray();
    }

    public void Dispose()
    {
        Rows?.Dispose();
        Pooled?.Dispose();
    }
}
