namespace Serving.Engine.Quantization;

/// <summary>
/// A weight matrix <c>[Rows, Columns]</c> quantized symmetrically per row: <c>W[n, k] ≈ Scales[n] · Values[n, k]</c> with
/// <c>Values</c> in [−127, 127] (row-major), and <c>RowSums[n] = Σ_k Values[n, k]</c>, which the VNNI kernel needs to take
/// the +128 offset of its unsigned inputs back out.
/// <para>
/// The values live in a pinned array (the kernels take their address on every call, and a weight never moves or dies
/// before the model), starting at a 64-byte boundary inside it: a managed array's data starts 16 bytes into the object, and
/// with every 64-byte load split over two cache lines the VNNI GEMV streamed 20–40 % slower (measured on Zen 5). The
/// memory is advised onto 2 MiB pages before it is first written, as a decode step streams every byte of it.
/// </para>
/// </summary>
public sealed class Int8Matrix
{
    private readonly sbyte[] _storage;
    private readonly int _offset;

    private unsafe Int8Matrix(int rows, int columns)
    {
        Rows = rows;
        Columns = columns;
        int count = checked(rows * columns);
        _storage = GC.AllocateUninitializedArray<sbyte>(checked(count + Runtime.CacheLines.Slack<sbyte>()), pinned: true);
        fixed (sbyte* start = _storage)
        {
            _offset = (int)(Runtime.CacheLines.Align(start) - start);
            Runtime.HugePages.Advise((nint)(start + _offset), count);
        }

        Scales = new float[rows];
        RowSums = new int[rows];
    }

    /// <summary>Output rows (N).</summary>
    public int Rows { get; }

    /// <summary>Inputs per row (K).</summary>
    public int Columns { get; }

    /// <summary>The quantized values <c>[Rows, Columns]</c>, row-major, 64-byte aligned.</summary>
    public Span<sbyte> Values => _storage.AsSpan(_offset, Rows * Columns);

    /// <summary>The scale of each row <c>[Rows]</c>.</summary>
    public float[] Scales { get; }

    /// <summary>The sum of each row's values <c>[Rows]</c>.</summary>
    public int[] RowSums { get; }

    /// <summary>Bytes of the quantized form (values, scales, sums).</summary>
    public long Bytes => (long)Rows * Columns + (Scales.LongLength + RowSums.LongLength) * 4;

    /// <summary>A matrix of the given shape whose values, scales and sums the quantizer then writes.</summary>
    internal static Int8Matrix Allocate(int rows, int columns) => new(rows, columns);
}
