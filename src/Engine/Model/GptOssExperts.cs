using Serving.Contracts.Configuration;
using Serving.Engine.Checkpoints;
using Serving.Engine.Quantization;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// gpt-oss's experts as its checkpoints stack them, loaded one expert at a time into the engine's layout (gate rows, then
/// up rows, each projection <c>[out, in]</c>):
/// <code>
/// bf16/f32:  mlp.experts.gate_up_proj [E, H, 2I]    down_proj [E, I, H]         (x · W: transposed here)
/// MXFP4:     mlp.experts.gate_up_proj_blocks [E, 2I, H/32, 16] + _scales [E, 2I, H/32]    down_proj_blocks [E, H, I/32, 16] + _scales [E, H, I/32]
/// biases:    mlp.experts.gate_up_proj_bias [E, 2I]   down_proj_bias [E, H]
/// </code>
/// Gate and up are interleaved along 2I (gate at the even indices, up at the odd: its modelling code's
/// <c>gate_up[..., ::2]</c> and <c>[..., 1::2]</c>); they are split here, so the clamped SwiGLU reads the two halves as every
/// gated MLP does. Under <c>--quantization mxfp4</c> MXFP4 experts of a bf16 or float32 CPU model stay MXFP4
/// (<see cref="Mxfp4Matrix"/>: the same values in about a quarter of bf16's bytes, the gate/up rows reordered block by
/// block); otherwise they are dequantized (and under int8 quantized again).
/// </summary>
internal static class GptOssExperts
{
    /// <param name="c">The model.</param>
    /// <param name="loader">The checkpoint's tensors.</param>
    /// <param name="layer">The layer's prefix.</param>
    /// <param name="source">The dtype projections are read in before <paramref name="projection"/> (float32 under int8), or null.</param>
    /// <param name="projection">How a float projection is held.</param>
    /// <param name="keepMxfp4">Whether MXFP4 experts stay so (<c>--quantization mxfp4</c>).</param>
    public static List<ExpertWeights> Load(ModelConfig c, TensorLoader loader, string layer, ScalarType? source, Func<Tensor, ProjectionWeight> projection,
        bool keepMxfp4)
    {
        var moe = c.Experts!;
        string p = layer + "mlp.experts.";
        int e = moe.Experts, h = c.HiddenSize, inter = moe.IntermediateSize;
        bool mxfp4 = loader.Contains(p + "gate_up_proj_blocks");
        bool native = mxfp4 && keepMxfp4 && loader.Device.type == TorchSharp.DeviceType.CPU && loader.Dtype is ScalarType.BFloat16 or ScalarType.Float32;
        if (mxfp4 && (h % Mxfp4.GroupSize != 0 || inter % Mxfp4.GroupSize != 0))
            throw new ModelLoadException($"{p}: MXFP4 experts need hidden_size {h} and intermediate_size {inter} in whole groups of {Mxfp4.GroupSize}");
        using var order = tensor([.. Enumerable.Range(0, inter).Select(i => 2L * i), .. Enumerable.Range(0, inter).Select(i => 2L * i + 1)], ScalarType.Int64, loader.Device);
        var experts = new List<ExpertWeights>(e);
        try
        {
            for (int expert = 0; expert < e; expert++)
            {
                using var scope = NewDisposeScope();
                if (native)
                {
                    experts.Add(new ExpertWeights
                    {
                        GateUp = ProjectionWeight.CreateMxfp4(Native(loader, p + "gate_up_proj", e, expert, 2 * inter, h, interleaved: true), loader.Dtype),
                        Down = ProjectionWeight.CreateMxfp4(Native(loader, p + "down_proj", e, expert, h, inter, interleaved: false), loader.Dtype),
                        GateUpBias = loader.LoadSlab(p + "gate_up_proj_bias", [e, 2 * inter], expert).index_select(0, order).DetachFromDisposeScope(),
                        DownBias = loader.LoadSlab(p + "down_proj_bias", [e, h], expert).DetachFromDisposeScope(),
                    });
                    continue;
                }

                var gateUp = mxfp4 ? Dequantized(loader, p + "gate_up_proj", e, expert, 2 * inter, h, source)
                    : loader.LoadSlab(p + "gate_up_proj", [e, h, 2 * inter], expert, source).t();
                var down = mxfp4 ? Dequantized(loader, p + "down_proj", e, expert, h, inter, source)
                    : loader.LoadSlab(p + "down_proj", [e, inter, h], expert, source).t();
                var gateUpWeight = projection(gateUp.index_select(0, order).contiguous().DetachFromDisposeScope());
                try
                {
                    experts.Add(new ExpertWeights
                    {
                        GateUp = gateUpWeight,
                        Down = projection(down.contiguous().DetachFromDisposeScope()),
                        GateUpBias = loader.LoadSlab(p + "gate_up_proj_bias", [e, 2 * inter], expert).index_select(0, order).DetachFromDisposeScope(),
                        DownBias = loader.LoadSlab(p + "down_proj_bias", [e, h], expert).DetachFromDisposeScope(),
                    });
                }
                catch
                {
                    gateUpWeight.Dispose();
                    throw;
                }
            }

            return experts;
        }
        catch
        {
            foreach (var expert in experts)
                expert.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Expert <paramref name="expert"/>'s <c>[rows, cols]</c> MXFP4 blocks and scales as they are, with
    /// <paramref name="interleaved"/> rows (gate/up) reordered gate rows first as the dequantized path orders them.
    /// </summary>
    private static Mxfp4Matrix Native(TensorLoader loader, string name, int experts, int expert, int rows, int cols, bool interleaved)
    {
        var (blocks, scales) = Raw(loader, name, experts, expert, rows, cols);
        if (!interleaved)
            return new Mxfp4Matrix(rows, cols, blocks, scales);
        int groups = cols / Mxfp4.GroupSize, half = rows / 2;
        var orderedBlocks = new byte[blocks.Length];
        var orderedScales = new byte[scales.Length];
        for (int r = 0; r < rows; r++)
        {
            int from = r < half ? 2 * r : 2 * (r - half) + 1;      // gate row i was row 2i, up row i row 2i + 1
            blocks.AsSpan(from * groups * Mxfp4.BlockBytes, groups * Mxfp4.BlockBytes).CopyTo(orderedBlocks.AsSpan(r * groups * Mxfp4.BlockBytes));
            scales.AsSpan(from * groups, groups).CopyTo(orderedScales.AsSpan(r * groups));
        }

        return new Mxfp4Matrix(rows, cols, orderedBlocks, orderedScales);
    }

    private static (byte[] Blocks, byte[] Scales) Raw(TensorLoader loader, string name, int experts, int expert, int rows, int cols)
    {
        int groups = cols / Mxfp4.GroupSize;
        long groupsPerExpert = (long)rows * groups;
        var blocks = new byte[groupsPerExpert * Mxfp4.BlockBytes];
        var scales = new byte[groupsPerExpert];
        loader.ReadBytes(name + "_blocks", [experts, rows, groups, Mxfp4.BlockBytes], expert * blocks.LongLength, blocks);
        loader.ReadBytes(name + "_scales", [experts, rows, groups], expert * scales.LongLength, scales);
        return (blocks, scales);
    }

    /// <summary>Expert <paramref name="expert"/>'s <c>[rows, cols]</c> projection from its MXFP4 blocks and scales, as float32 or the loader's dtype.</summary>
    private static Tensor Dequantized(TensorLoader loader, string name, int experts, int expert, int rows, int cols, ScalarType? source)
    {
        var (blocks, scales) = Raw(loader, name, experts, expert, rows, cols);
        var values = new float[(long)rows * cols];
        Mxfp4.Dequantize(blocks, scales, values);
        return tensor(values, [rows, cols], ScalarType.Float32).to(source ?? loader.Dtype, loader.Device);
    }
}
