using Serving.Contracts.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// What <see cref="LlamaModel.CaptureProjectionInputs"/> collects: a projection's input <c>[tokens, in]</c> as float32 on
/// the host, recorded under (layer, target) for every projection that reads it (q, k and v share theirs).
/// </summary>
internal static class ProjectionInputCapture
{
    /// <summary>Records <paramref name="input"/> for <paramref name="targets"/> of <paramref name="layer"/>; nothing when <paramref name="capture"/> is null.</summary>
    public static void Add(IDictionary<(int, LoraTarget), float[]>? capture, int layer, Tensor input, params LoraTarget[] targets)
    {
        if (capture is null)
            return;
        using var cpu = input.to(ScalarType.Float32).cpu().contiguous();
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(cpu.bytes).ToArray();
        foreach (var target in targets)
            capture[(layer, target)] = values;
    }
}
