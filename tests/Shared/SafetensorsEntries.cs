using Serving.Contracts.Safetensors;

namespace Serving.Tests.Shared;

/// <summary>A safetensors file's tensors as writer entries (their bytes read now), so a test can add, drop or change some and write the file again.</summary>
public static class SafetensorsEntries
{
    public static List<SafetensorsWriter.Entry> Read(string path)
    {
        var file = SafetensorsFile.Open(path);
        return [.. file.Tensors.Values.Select(t =>
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            return SafetensorsWriter.Entry.Of(t.Name, t.Dtype, t.Shape, bytes);
        })];
    }

    /// <summary>A LoRA pair of zeros for <paramref name="module"/> (its full PEFT name, without <c>base_model.model.</c>).</summary>
    public static void AddZeroPair(List<SafetensorsWriter.Entry> entries, string module, long[] a, long[] b)
    {
        entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.{module}.lora_A.weight", SafetensorsDtype.F32, a, new byte[a[0] * a[1] * 4]));
        entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.{module}.lora_B.weight", SafetensorsDtype.F32, b, new byte[b[0] * b[1] * 4]));
    }
}
