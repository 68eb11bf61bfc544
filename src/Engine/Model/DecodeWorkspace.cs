using Serving.Contracts.Configuration;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Every activation buffer of one all-decode step of <see cref="CpuDecodePath"/>, allocated together (zeroed) and reused
/// by every layer, and by later steps of the same token count. P = T rounded up to 32: the buffers that feed an AMX GEMM
/// have P rows, since the kernel loads whole 32-row tiles (what the rows past T hold only reaches outputs it drops).
/// <code>
/// Normed [P, H]    Qkv [T, (Hq + 2·Hkv)·D]    Attention [P, Hq·D]    O [T, H]
/// GateUp [T, 2·I]  Activated [P, I]           Down [T, H]
/// mixture of experts (Iₑ the experts' intermediate size, E their count), one expert's rows at a time:
/// RouterLogits [T, E]   ExpertInput [P, H]   ExpertGateUp [T, 2·Iₑ]   ExpertActivated [P, Iₑ]   ExpertDown [T, H]
/// and with a shared expert of width Iₛ: SharedGateUp [T, 2·Iₛ]   SharedActivated [P, Iₛ]   SharedGate [T, 1]
/// </code>
/// The tensors are outside any dispose scope; <see cref="Dispose"/> frees them. Views of the first T rows are there for
/// the LoRA kernels, which take tensors.
/// </summary>
internal sealed class DecodeWorkspace : IDisposable
{
    private readonly Tensor[] _owned;

    public DecodeWorkspace(ModelConfig c, int tokens, ScalarType dtype)
    {
        Tokens = tokens;
        long padded = (tokens + 31) / 32 * 32;
        int qkv = (c.NumHeads + 2 * c.NumKvHeads) * c.HeadDim, attention = c.NumHeads * c.HeadDim;
        var normed = Buffer(padded, c.HiddenSize, dtype);
        var attended = Buffer(padded, attention, dtype);
        var activated = Buffer(padded, c.IntermediateSize, dtype);
        Qkv = Buffer(tokens, qkv, dtype);
        O = Buffer(tokens, c.HiddenSize, dtype);
        GateUp = Buffer(tokens, 2L * c.IntermediateSize, dtype);
        Down = Buffer(tokens, c.HiddenSize, dtype);
        Normed = View(normed, tokens);
        Attention = View(attended, tokens);
        Activated = View(activated, tokens);
        _owned = [normed, attended, activated, Qkv, O, GateUp, Down, Normed, Attention, Activated];
        if (c.Experts is { } moe)
        {
            RouterLogits = Buffer(tokens, moe.Experts, dtype);
            ExpertInput = Buffer(padded, c.HiddenSize, dtype);
            ExpertGateUp = Buffer(tokens, 2L * moe.IntermediateSize, dtype);
            ExpertActivated = Buffer(padded, moe.IntermediateSize, dtype);
            ExpertDown = Buffer(tokens, c.HiddenSize, dtype);
            _owned = [.. _owned, RouterLogits, ExpertInput, ExpertGateUp, ExpertActivated, ExpertDown];
            if (moe.SharedExpertSize > 0)
            {
                SharedGateUp = Buffer(tokens, 2L * moe.SharedExpertSize, dtype);
                SharedActivated = Buffer(padded, moe.SharedExpertSize, dtype);
                SharedGate = Buffer(tokens, 1, dtype);
                _owned = [.. _owned, SharedGateUp, SharedActivated, SharedGate];
            }
        }
    }

    /// <summary>The routing's host arrays (<see cref="ExpertMlpRaw"/>), grown on first use.</summary>
    internal float[]? RoutedLogits, RoutedWeights;
    internal int[]? RoutedExperts;

    public Tensor? RouterLogits { get; }
    public Tensor? ExpertInput { get; }
    public Tensor? ExpertGateUp { get; }
    public Tensor? ExpertActivated { get; }
    public Tensor? ExpertDown { get; }
    public Tensor? SharedGateUp { get; }
    public Tensor? SharedActivated { get; }
    public Tensor? SharedGate { get; }

    /// <summary>T, the step's token count.</summary>
    public int Tokens { get; }

    public Tensor Normed { get; }
    public Tensor Qkv { get; }
    public Tensor Attention { get; }
    public Tensor O { get; }
    public Tensor GateUp { get; }
    public Tensor Activated { get; }
    public Tensor Down { get; }

    private static Tensor Buffer(long rows, long columns, ScalarType dtype) => zeros([rows, columns], dtype).DetachFromDisposeScope();

    private static Tensor View(Tensor buffer, int rows) => buffer.narrow(0, 0, rows).DetachFromDisposeScope();

    public void Dispose()
    {
        foreach (var t in _owned)
            t.Dispose();
    }
}
