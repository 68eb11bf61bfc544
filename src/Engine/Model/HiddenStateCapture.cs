using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Asks <see cref="LlamaModel.Forward"/> for the final hidden states it computes logits from: after the final RMSNorm,
/// the lm_head's input, one row per logits row in the same order — what a decoder embedding model (Qwen3-Embedding,
/// e5-mistral) pools.
/// </summary>
public sealed class HiddenStateCapture : IDisposable
{
    /// <summary><c>[logits rows, hidden]</c> float32 on the host, once the forward pass ran; null before.</summary>
    public Tensor? Rows { get; internal set; }

    /// <summary>Logits row <paramref name="row"/>'s hidden state.</summary>
    public unsafe float[] Row(int row)
    {
        var rows = Rows ?? throw new InvalidOperationException("the forward pass has not run");
        int hidden = (int)rows.size(1);
        return new ReadOnlySpan<float>((float*)Runtime.CpuTensorMemory.Address(rows) + (long)row * hidden, hidden).ToArray();
    }

    public void Dispose() => Rows?.Dispose();
}
