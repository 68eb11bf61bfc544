using System.Text;
using Serving.Contracts.Safetensors;
using Serving.Tests.Shared;

namespace Serving.Contracts.Tests.Safetensors;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly string _dir = TestDirectories.Create("safetensors");

    [Fact]
    public void Open_WrittenFile_RoundTripsHeaderAndData()
    {
        string path = Path.Combine(_dir, "ok.safetensors");
        var data = Enumerable.Range(0, 24).Select(i => (byte)i).ToArray();
        SafetensorsWriter.Write(path, [SafetensorsWriter.Entry.Of("w", SafetensorsDtype.F32, [2, 3], data)], new Dictionary<string, string> { ["format"] = "pt" });
        var file = SafetensorsFile.Open(path);
        var info = file.Tensors["w"];
        Assert.Equal(new long[] { 2, 3 }, info.Shape);
        Assert.Equal("pt", file.Metadata["format"]);
        var back = new byte[24];
        file.ReadInto(info, back);
        Assert.Equal(data, back);
        Assert.Equal(0, (info.DataOffset - 8) % 8);
    }

    [Fact]
    public void Open_TruncatedData_NamesTensorAndFile()
    {
        string path = Write("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", dataBytes: 8);
        var ex = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'w'", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Open_HeaderLengthBeyondFile_Throws()
    {
        string path = Path.Combine(_dir, "long.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(1000L), .. "{}"u8.ToArray()]);
        Assert.Contains("runs past the end", Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Open_FileShorterThanPrefix_Throws()
    {
        string path = Path.Combine(_dir, "tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path));
    }

    [Fact]
    public void Open_NonJsonHeader_Throws() =>
        Assert.Contains("not valid JSON", Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(Write("{not json", 0))).Message);

    [Fact]
    public void Open_UnknownDtype_Throws() =>
        Assert.Contains("unsupported dtype 'F8_E4M3'", Assert.Throws<SafetensorsFormatException>(() =>
            SafetensorsFile.Open(Write("""{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}""", 4))).Message);

    [Fact]
    public void Open_OffsetsDisagreeWithShape_Throws() =>
        Assert.Contains("needs 16", Assert.Throws<SafetensorsFormatException>(() =>
            SafetensorsFile.Open(Write("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}""", 16))).Message);

    [Fact]
    public void Open_OverlappingTensors_Throws() =>
        Assert.Contains("overlap", Assert.Throws<SafetensorsFormatException>(() =>
            SafetensorsFile.Open(Write("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12))).Message);

    [Fact]
    public void Open_NegativeDimension_Throws() =>
        Assert.Throws<SafetensorsFormatException>(() =>
            SafetensorsFile.Open(Write("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4)));

    private string Write(string header, int dataBytes)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)h.Length), .. h, .. new byte[dataBytes]]);
        return path;
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
