namespace Serving.LoadTests.Tests.Support;

internal static class Png
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The file is a PNG of the given size (IHDR width and height, big-endian at bytes 16–23).</summary>
    public static void AssertImage(string path, int width, int height)
    {
        Assert.True(File.Exists(path), $"{path} missing");
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(Signature, bytes[..8]);
        Assert.Equal(width, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
        Assert.Equal(height, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
        Assert.True(bytes.Length > 5_000, $"{path}: {bytes.Length} bytes is too small to hold a plot");
    }
}
