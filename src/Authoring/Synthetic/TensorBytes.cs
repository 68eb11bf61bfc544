using Serving.Contracts.Safetensors;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>Deterministic random tensor contents encoded as safetensors bytes.</summary>
internal static class TensorBytes
{
    /// <summary>Normal(mean, std) values from <paramref name="random"/> (Box–Muller), encoded in <paramref name="dtype"/>.</summary>
    public static byte[] Normal(SeededRandom random, long count, double mean, double std, SafetensorsDtype dtype)
    {
        var values = new float[count];
        for (long i = 0; i < count; i += 2)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(mean + std * r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < count)
                values[i + 1] = (float)(mean + std * r * Math.Sin(2 * Math.PI * u2));
        }

        return Encode(values, dtype);
    }

    public static byte[] Encode(ReadOnlySpan<float> values, SafetensorsDtype dtype)
    {
        switch (dtype)
        {
            case SafetensorsDtype.F32:
                return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray();
            case SafetensorsDtype.F16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                    BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), (Half)values[i]);
                return bytes;
            }

            case SafetensorsDtype.BF16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                {
                    uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                    uint rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16;   // round to nearest even
                    BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), (ushort)rounded);
                }

                return bytes;
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), $"cannot write weights as {dtype}");
        }
    }
}
