using System.Buffers;

namespace Serving.AdapterStore.Files;

/// <summary>
/// Buffers for adapter weights files as they are read: reused, because fresh memory costs a page fault per 4 KiB (on a
/// virtual machine more than reading, hashing and parsing the file), and bounded, because the pool never shrinks: at most
/// one buffer per core for each power-of-two size up to <see cref="MaxPooledBytes"/>. Larger files get an array of their
/// own, which the garbage collector takes back. A buffer's used bytes are cleared before it goes back: the next read
/// may be another tenant's.
/// </summary>
internal static class AdapterFileBuffers
{
    /// <summary>Files above this size are not pooled (64 MiB: a rank-64 adapter on all projections of a 7B model is ~160 MB).</summary>
    public const int MaxPooledBytes = 64 << 20;

    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(MaxPooledBytes, Math.Max(2, Environment.ProcessorCount));

    /// <summary>A buffer of at least <paramref name="length"/> bytes; its contents are undefined.</summary>
    public static byte[] Rent(int length) => length > MaxPooledBytes ? GC.AllocateUninitializedArray<byte>(length) : Pool.Rent(length);

    /// <summary>Clears the first <paramref name="used"/> bytes of a buffer from <see cref="Rent"/> and gives it back.</summary>
    public static void Return(byte[] buffer, int used)
    {
        if (buffer.Length > MaxPooledBytes)
            return;
        buffer.AsSpan(0, used).Clear();
        Pool.Return(buffer);
    }
}
