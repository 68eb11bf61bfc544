using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// The offline reference for adapters: a copy of a float32 model folder with adapters folded into its weights, computed
/// in double with plain loops (no engine code). LoRA: W += Σ weight · scale · B·A. A DoRA module (weight 1, alone):
/// W' = g ⊙ (W + scale · B·A) row-wise, with g = m / ‖W + scale · B·A‖ over the input dimension.
/// </summary>
internal static class MergedModelWriter
{
    public static void Write(string modelDir, string dir, IReadOnlyList<(LoraAdapterWeights Adapter, float Weight)> mix)
    {
        Directory.CreateDirectory(dir);
        foreach (string f in Directory.GetFiles(modelDir).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var file = SafetensorsFile.Open(Path.Combine(modelDir, "model.safetensors"));
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var t in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            var w = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, w, 0, bytes.Length);
            foreach (var (adapter, weight) in mix)
                foreach (var m in adapter.Modules.Where(m => t.Name == $"model.layers.{m.Layer}.{LoraTargets.ModulePath(m.Target)}.weight"))
                    Fold(w, (int)t.Shape[0], (int)t.Shape[1], m, weight);
            Buffer.BlockCopy(w, 0, bytes, 0, bytes.Length);
            entries.Add(SafetensorsWriter.Entry.Of(t.Name, t.Dtype, t.Shape, bytes));
        }

        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries);
    }

    /// <summary>The DoRA row norms ‖W + scale · B·A‖ of one module over <paramref name="w"/> <c>[out, in]</c>, in double.</summary>
    public static double[] RowNorms(float[] w, int outF, int inF, LoraModuleWeights m)
    {
        var norms = new double[outF];
        for (int o = 0; o < outF; o++)
        {
            double sum = 0;
            for (int i = 0; i < inF; i++)
            {
                double v = w[o * inF + i] + m.Scale * Delta(m, o, i, inF);
                sum += v * v;
            }

            norms[o] = Math.Sqrt(sum);
        }

        return norms;
    }

    private static void Fold(float[] w, int outF, int inF, LoraModuleWeights m, float weight)
    {
        double[]? g = m.Magnitude is null ? null : RowNorms(w, outF, inF, m).Select((n, o) => m.Magnitude[o] / n).ToArray();
        var merged = new double[w.Length];
        for (int o = 0; o < outF; o++)
            for (int i = 0; i < inF; i++)
            {
                double v = w[o * inF + i] + weight * m.Scale * Delta(m, o, i, inF);
                merged[o * inF + i] = g is null ? v : g[o] * v;
            }

        for (int k = 0; k < w.Length; k++)
            w[k] = (float)merged[k];
    }

    private static double Delta(LoraModuleWeights m, int o, int i, int inF)
    {
        double delta = 0;
        for (int j = 0; j < m.Rank; j++)
            delta += (double)m.B[o * m.Rank + j] * m.A[j * inF + i];
        return delta;
    }
}
