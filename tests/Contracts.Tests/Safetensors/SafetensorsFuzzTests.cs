using System.Text;
using CsCheck;
using Serving.Contracts.Safetensors;

namespace Serving.Contracts.Tests.Safetensors;

/// <summary>Generated inputs (random bytes and mutated valid files): the parser either accepts or throws its own error.</summary>
public sealed class SafetensorsFuzzTests
{
    private static readonly byte[] Valid = BuildValid();

    private static byte[] BuildValid()
    {
        string header = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}""";
        var h = Encoding.UTF8.GetBytes(header);
        return [.. BitConverter.GetBytes((long)h.Length), .. h, .. new byte[32]];
    }

    private static void ParseOrOwnError(byte[] content)
    {
        try
        {
            using var stream = new MemoryStream(content, writable: false);
            var file = SafetensorsFile.Read("fuzz.safetensors", stream);
            foreach (var t in file.Tensors.Values)
                Assert.InRange(t.DataOffset + t.ByteLength, 0, content.Length);
        }
        catch (SafetensorsFormatException)
        {
        }
    }

    [Fact]
    public void Read_RandomBytes_OnlyFormatErrors() =>
        Gen.Byte.Array[0, 300].Sample(ParseOrOwnError, iter: 50_000);

    [Fact]
    public void Read_MutatedValidFile_OnlyFormatErrors() =>
        Gen.Select(Gen.Int[0, Valid.Length - 1].Array[1, 6], Gen.Byte.Array[1, 6], Gen.Int[0, Valid.Length])
            .Sample((positions, values, cut) =>
            {
                var content = (byte[])Valid.Clone();
                for (int i = 0; i < positions.Length; i++)
                    content[positions[i]] = values[i % values.Length];
                ParseOrOwnError(content[..Math.Max(cut, Valid.Length - 40)]);
            }, iter: 50_000);

    [Fact]
    public void Read_GeneratedHeaders_OnlyFormatErrors()
    {
        var dtype = Gen.OneOf<string>("F32", "F16", "BF16", "I64", "I32", "F8_E4M3", "", "f32");
        var number = Gen.OneOf<string>(Gen.Long[-5, 64].Select(x => x.ToString()), Gen.OneOf<string>("1e3", "-0", "9223372036854775807", "1.5", "null", "\"3\""));
        var list = number.Array[0, 4].Select(xs => "[" + string.Join(",", xs) + "]");
        var tensor = Gen.Select(dtype, list, list).Select((d, shape, offsets) => $"{{\"dtype\":\"{d}\",\"shape\":{shape},\"data_offsets\":{offsets}}}");
        var header = Gen.Select(Gen.String[Gen.Char.AlphaNumeric, 0, 3], tensor).Array[0, 4]
            .Select(entries => "{" + string.Join(",", entries.Select(e => $"\"{e.Item1}\":{e.Item2}")) + "}");
        Gen.Select(header, Gen.Int[0, 80]).Sample((json, dataBytes) =>
        {
            var h = Encoding.UTF8.GetBytes(json);
            ParseOrOwnError([.. BitConverter.GetBytes((long)h.Length), .. h, .. new byte[dataBytes]]);
        }, iter: 50_000);
    }
}
