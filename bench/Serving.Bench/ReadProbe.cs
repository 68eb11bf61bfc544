using System.Diagnostics;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// The machine's read bandwidth, as every core streaming its share of one buffer larger than the caches. A pass is one
/// read of the whole buffer; timing a pass right beside each measured step lets a benchmark pair them, so that a neighbour
/// taking bandwidth for a while slows both sides of a pair rather than skewing a ratio of two separate medians.
/// </summary>
internal sealed unsafe class ReadProbe : IDisposable
{
    private readonly Tensor _buffer;
    private readonly nint _address;
    private readonly long _share;
    private readonly int _threads = Environment.ProcessorCount;
    private long _sink;

    /// <param name="bytes">Bytes a pass reads (at least 256 MiB, so no cache holds them).</param>
    public ReadProbe(long bytes)
    {
        Bytes = Math.Max(256L << 20, bytes) & ~1023L;
        _buffer = ones(Bytes, ScalarType.Byte);
        _address = (nint)Serving.Engine.Runtime.CpuTensorMemory.Address(_buffer);
        _share = Bytes / _threads & ~1023L;
        Pass();
    }

    /// <summary>Bytes one pass reads.</summary>
    public long Bytes { get; }

    /// <summary>Reads the buffer once; its time in seconds.</summary>
    public double Pass()
    {
        // libtorch's OpenMP workers spin for a while after a step on the very cores this pass's threads need.
        Thread.Sleep(10);
        long begin = Stopwatch.GetTimestamp();
        nint address = _address;
        long share = _share;
        Parallel.For(0, _threads, t =>
        {
            var sum = Vector256<ulong>.Zero;
            var p = (Vector256<ulong>*)((byte*)address + t * share);
            for (long i = 0; i < share / 32; i += 4)
                sum += p[i] ^ p[i + 1] ^ p[i + 2] ^ p[i + 3];
            Interlocked.Add(ref _sink, (long)Vector256.Sum(sum));
        });
        return Stopwatch.GetElapsedTime(begin).TotalSeconds;
    }

    /// <summary>Bytes per second of one pass.</summary>
    public double PassBandwidth() => _share * _threads / Pass();

    public void Dispose() => _buffer.Dispose();
}
