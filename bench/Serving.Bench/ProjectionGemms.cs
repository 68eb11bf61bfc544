using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// The projection GEMMs of one decode step alone, on random inputs of the step's shapes: per layer the fused qkv,
/// o, fused gate/up and down projections, then the lm_head, through the same path the model takes (AMX-packed or libtorch). The denominator of "step time / GEMM time".
/// </summary>
internal sealed class ProjectionGemms : IDisposable
{
    private readonly LlamaModel _model;
    private readonly Tensor _hidden;
    private readonly Tensor _attention;
    private readonly Tensor _intermediate;

    public ProjectionGemms(LlamaModel model, int batch)
    {
        _model = model;
        var c = model.Config;
        using var h = randn(batch, c.HiddenSize);
        using var a = randn(batch, c.NumHeads * c.HeadDim);
        using var i = randn(batch, c.IntermediateSize);
        _hidden = h.to(model.Dtype, model.Device);
        _attention = a.to(model.Dtype, model.Device);
        _intermediate = i.to(model.Dtype, model.Device);
    }

    /// <summary>The model's own choice of the small-batch kernel for steps of a few rows.</summary>
    private bool SmallBatch => _model.Kernels.CpuSmallBatchProjections;

    public void Run()
    {
        var w = _model.Weights;
        foreach (var layer in w.Layers)
        {
            layer.Qkv.Apply(_hidden, smallBatchKernel: SmallBatch).Dispose();
            layer.O.Apply(_attention, smallBatchKernel: SmallBatch).Dispose();
            // A mixture-of-experts layer's expert GEMMs depend on the routing: only dense MLPs are timed here.
            layer.GateUp?.Apply(_hidden, smallBatchKernel: SmallBatch).Dispose();
            layer.Down?.Apply(_intermediate, smallBatchKernel: SmallBatch).Dispose();
        }

        w.LmHead.Apply(_hidden, smallBatchKernel: SmallBatch).Dispose();
        // On a GPU the calls above only queue kernels: the GEMMs' time is when the device has run them.
        if (_model.Device.type == TorchSharp.DeviceType.CUDA)
            cuda.synchronize(_model.Device);
    }

    /// <summary>
    /// <see cref="Run"/>, timing each kind of projection (summed over the layers): bytes of weight streamed per second by
    /// kind, to tell a kernel's own rate from what the step around it costs.
    /// </summary>
    public Dictionary<string, (double Seconds, long Bytes)> RunTimed()
    {
        var w = _model.Weights;
        var totals = new Dictionary<string, (double Seconds, long Bytes)>();
        void Time(string kind, ProjectionWeight weight, Tensor input)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            weight.Apply(input, smallBatchKernel: SmallBatch).Dispose();
            double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
            var (s, b) = totals.GetValueOrDefault(kind);
            totals[kind] = (s + seconds, b + weight.Bytes);
        }

        foreach (var layer in w.Layers)
        {
            Time("qkv", layer.Qkv, _hidden);
            Time("o", layer.O, _attention);
            if (layer.GateUp is { } gateUp && layer.Down is { } down)
            {
                Time("gate_up", gateUp, _hidden);
                Time("down", down, _intermediate);
            }
        }

        Time("lm_head", w.LmHead, _hidden);
        return totals;
    }

    public void Dispose()
    {
        _hidden.Dispose();
        _attention.Dispose();
        _intermediate.Dispose();
    }
}
