namespace Serving.Engine.Runtime;

/// <summary>
/// 64-byte cache lines, for buffers the kernels read a vector of 64 bytes at a time: a managed array's data starts 16
/// bytes into a line, so without an offset every such load straddles two lines, which halved the rate of the int8 and
/// skinny-product kernels on buffers rented from the pool.
/// </summary>
internal static unsafe class CacheLines
{
    /// <summary>Bytes in a cache line.</summary>
    public const int Bytes = 64;

    /// <summary>Elements of <typeparamref name="T"/> to rent beyond what is needed so that <see cref="Align{T}"/> stays inside the buffer.</summary>
    public static int Slack<T>() where T : unmanaged => (Bytes + sizeof(T) - 1) / sizeof(T);

    /// <summary>
    /// The first address at or after <paramref name="start"/> on a line boundary (<paramref name="start"/> must be
    /// aligned to <typeparamref name="T"/>), at most <see cref="Slack{T}"/> − 1 elements on.
    /// </summary>
    public static T* Align<T>(T* start) where T : unmanaged => (T*)(((nint)start + Bytes - 1) & ~(nint)(Bytes - 1));
}
