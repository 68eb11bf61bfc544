using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;

namespace Serving.Engine.Model;

/// <summary>
/// <see cref="ExpertMlp"/> on raw memory for <see cref="CpuDecodePath"/>: the same routing (<see cref="ExpertRouting"/>), the
/// same projections on the same gathered rows, the same roundings, so the same bits:
/// <code>
/// logits = dt(normed · Routerᵀ)                    experts, weights = ExpertRouting(logits)
/// down   = 0;  for e ascending, its rows r:  down[r] = dt(down[r] + dt(Expert_e(normed[r]) · dt(weight)))
/// Qwen2-MoE, every row r:                       down[r] = dt(down[r] + dt(Shared(normed[r]) · dt(σ(normed[r] · g))))
/// </code>
/// normed, down <c>[T, H]</c>; the workspace's expert buffers hold one expert's rows at a time. Adapters of the experts
/// (<see cref="ExpertAdapters.ApplyRows"/>) add to an expert's gate/up and down outputs as on the per-op path.
/// </summary>
internal static unsafe class ExpertMlpRaw
{
    public static void Run(LlamaLayerWeights layer, ModelConfig c, DecodeWorkspace ws, byte* normed, byte* down, int t, bool bf16, ExpertAdapters? adapters = null)
    {
        var moe = c.Experts!;
        int h = c.HiddenSize, k = moe.TopK, size = bf16 ? 2 : 4;
        byte* logitsAt = CpuTensorMemory.Address(ws.RouterLogits!);
        layer.Router!.LinearRaw(normed, t, Address(layer.RouterBias), logitsAt, float32Output: false);
        var logits = ScratchArrays.Fit(ref ws.RoutedLogits, t * moe.Experts).AsSpan(0, t * moe.Experts);
        if (bf16)
            Bf16.ToFloat(new ReadOnlySpan<ushort>(logitsAt, logits.Length), logits);
        else
            new ReadOnlySpan<float>(logitsAt, logits.Length).CopyTo(logits);
        var experts = ScratchArrays.Fit(ref ws.RoutedExperts, t * k).AsSpan(0, t * k);
        var weights = ScratchArrays.Fit(ref ws.RoutedWeights, t * k).AsSpan(0, t * k);
        ExpertRouting.Route(logits, t, moe, experts, weights);

        new Span<byte>(down, t * h * size).Clear();
        byte* input = CpuTensorMemory.Address(ws.ExpertInput!), gateUp = CpuTensorMemory.Address(ws.ExpertGateUp!);
        byte* activated = CpuTensorMemory.Address(ws.ExpertActivated!), output = CpuTensorMemory.Address(ws.ExpertDown!);
        Span<int> slots = t * k <= 256 ? stackalloc int[t * k] : new int[t * k];
        long rowBytes = (long)h * size;
        for (int e = 0; e < moe.Experts; e++)
        {
            int m = 0;
            for (int i = 0; i < experts.Length; i++)
                if (experts[i] == e)
                    slots[m++] = i;
            if (m == 0)
                continue;
            for (int j = 0; j < m; j++)
                Buffer.MemoryCopy(normed + slots[j] / k * rowBytes, input + j * rowBytes, rowBytes, rowBytes);
            var expert = layer.Experts![e];
            int[]? rows = null;
            if (adapters is not null)
            {
                rows = new int[m];
                for (int j = 0; j < m; j++)
                    rows[j] = slots[j] / k;
            }

            expert.GateUp.LinearRaw(input, m, Address(expert.GateUpBias), gateUp, float32Output: false);
            if (rows is not null)
            {
                adapters!.ApplyRows(e, Contracts.Lora.LoraTarget.Gate, (nint)input, (nint)gateUp, 2 * moe.IntermediateSize, 0, rows, bf16);
                adapters.ApplyRows(e, Contracts.Lora.LoraTarget.Up, (nint)input, (nint)gateUp, 2 * moe.IntermediateSize, moe.IntermediateSize, rows, bf16);
            }

            CpuElementwiseKernels.GatedActivation(gateUp, activated, m, moe.IntermediateSize, c.Activation, bf16, (float)(c.SwigluLimit ?? 0));
            expert.Down.LinearRaw(activated, m, Address(expert.DownBias), output, float32Output: false);
            if (rows is not null)
                adapters!.ApplyRows(e, Contracts.Lora.LoraTarget.Down, (nint)activated, (nint)output, h, 0, rows, bf16);
            for (int j = 0; j < m; j++)
                AddScaled(down + slots[j] / k * rowBytes, output + j * rowBytes, weights[slots[j]], h, bf16);
        }

        if (layer.SharedExpert is { } shared)
        {
            byte* sharedGateUp = CpuTensorMemory.Address(ws.SharedGateUp!), sharedActivated = CpuTensorMemory.Address(ws.SharedActivated!);
            byte* gate = CpuTensorMemory.Address(ws.SharedGate!);
            shared.GateUp.LinearRaw(normed, t, null, sharedGateUp, float32Output: false);
            CpuElementwiseKernels.GatedActivation(sharedGateUp, sharedActivated, t, moe.SharedExpertSize, c.Activation, bf16);
            shared.Down.LinearRaw(sharedActivated, t, null, output, float32Output: false);
            layer.SharedExpertGate!.LinearRaw(normed, t, null, gate, float32Output: false);
            for (int r = 0; r < t; r++)
            {
                float logit = bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)gate)[r] << 16) : ((float*)gate)[r];
                AddScaled(down + r * rowBytes, output + r * rowBytes, ExpertRouting.SharedGate(logit), h, bf16);
            }
        }
    }

    /// <summary>A bias's address (its tensor lives as long as the model), or null.</summary>
    private static byte* Address(TorchSharp.torch.Tensor? bias) => bias is null ? null : CpuTensorMemory.Address(bias);

    /// <summary><c>y[i] = dt(y[i] + dt(x[i] · dt(weight)))</c> over one row, as libtorch's multiply and index_add round.</summary>
    private static void AddScaled(byte* y, byte* x, float weight, int h, bool bf16)
    {
        if (!bf16)
        {
            float* yf = (float*)y, xf = (float*)x;
            for (int i = 0; i < h; i++)
                yf[i] += xf[i] * weight;
            return;
        }

        ushort* yb = (ushort*)y, xb = (ushort*)x;
        float w = BitConverter.UInt32BitsToSingle((uint)Bf16.FromFloat(weight) << 16);
        for (int i = 0; i < h; i++)
        {
            float product = BitConverter.UInt32BitsToSingle((uint)Bf16.FromFloat(BitConverter.UInt32BitsToSingle((uint)xb[i] << 16) * w) << 16);
            yb[i] = Bf16.FromFloat(BitConverter.UInt32BitsToSingle((uint)yb[i] << 16) + product);
        }
    }
}
