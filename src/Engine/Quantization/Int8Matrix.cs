namespace Serving.Engine.Quantization;

/// <summary>
/// A weight matrix <c>[Rows, Columns]</c> quantized symmetrically per row: <c>W[n, k] ≈ Scales[n] · Value(n, k)</c> with
/// values in [−127, 127], and <c>RowSums[n] = Σ_k Value(n, k)</c>, which the VNNI kernel needs to take the +128 offset of
/// its unsigned inputs back out.
/// <para>
/// The values are held in blocks of <see cref="BlockRows"/> output rows, and inside a block by groups of
/// <see cref="GroupColumns"/> inputs, each group holding every row's four values side by side:
/// <code>Packed[(n / 64)·64·PaddedColumns + (k / 4)·256 + (n % 64)·4 + k % 4] = Value(n, k)</code>
/// with rows padded to a multiple of 64 and columns to a multiple of 4 by zeros (which add nothing to any sum). Why: one
/// 64-byte load then holds four inputs of sixteen outputs, which VPDPBUSD multiplies by one input's four bytes broadcast
/// and adds into sixteen outputs' lanes, so the sums never need a horizontal reduction and an input's broadcast serves every
/// row of the block; and a block streams front to back, as the prefetcher likes. Row-major int8 rows spent as many
/// instructions reducing and storing each output as multiplying for it at eight input rows.
/// </para>
/// <para>
/// The bytes live in a pinned array (the kernels take their address on every call, and a weight never moves or dies before
/// the model), starting at a 64-byte boundary inside it: a managed array's data starts 16 bytes into the object, and with
/// every 64-byte load split over two cache lines the VNNI GEMV streamed 20–40 % slower (measured on Zen 5). The memory is
/// advised onto 2 MiB pages before it is first written, as a decode step streams every byte of it.
/// </para>
/// </summary>
public sealed class Int8Matrix
{
    /// <summary>Output rows per block of the packed layout.</summary>
    public const int BlockRows = 64;

    /// <summary>Inputs per group of the packed layout (the four bytes VPDPBUSD multiplies and adds into one lane).</summary>
    public const int GroupColumns = 4;

    private readonly sbyte[] _storage;
    private readonly int _offset;

    private unsafe Int8Matrix(int rows, int columns)
    {
        Rows = rows;
        Columns = columns;
        PaddedColumns = checked((columns + GroupColumns - 1) / GroupColumns * GroupColumns);
        int count = checked((rows + BlockRows - 1) / BlockRows * BlockRows * PaddedColumns);
        _storage = GC.AllocateUninitializedArray<sbyte>(checked(count + Runtime.CacheLines.Slack<sbyte>()), pinned: true);
        fixed (sbyte* start = _storage)
        {
            _offset = (int)(Runtime.CacheLines.Align(start) - start);
            Runtime.HugePages.Advise((nint)(start + _offset), count);
        }

        // The padding must read as zeros; the quantizer writes every real value.
        Packed.Clear();
        Scales = new float[rows];
        RowSums = new int[rows];
    }

    /// <summary>Output rows (N).</summary>
    public int Rows { get; }

    /// <summary>Inputs per row (K).</summary>
    public int Columns { get; }

    /// <summary><see cref="Columns"/> rounded up to a multiple of <see cref="GroupColumns"/>.</summary>
    public int PaddedColumns { get; }

    /// <summary>The quantized values in the packed layout (see the class), 64-byte aligned.</summary>
    public Span<sbyte> Packed => _storage.AsSpan(_offset, (Rows + BlockRows - 1) / BlockRows * BlockRows * PaddedColumns);

    /// <summary>The scale of each row <c>[Rows]</c>.</summary>
    public float[] Scales { get; }

    /// <summary>The sum of each row's values <c>[Rows]</c>.</summary>
    public int[] RowSums { get; }

    /// <summary>Bytes of the quantized form (packed values with their padding, scales, sums).</summary>
    public long Bytes => Packed.Length + (Scales.LongLength + RowSums.LongLength) * 4;

    /// <summary>The quantized value of output <paramref name="row"/>, input <paramref name="column"/>.</summary>
    public sbyte Value(int row, int column)
    {
        if ((uint)row >= (uint)Rows || (uint)column >= (uint)Columns)
            throw new ArgumentOutOfRangeException(row >= Rows || row < 0 ? nameof(row) : nameof(column));
        return Packed[Index(row, column)];
    }

    /// <summary>Copies output <paramref name="row"/>'s <see cref="Columns"/> values into <paramref name="destination"/>.</summary>
    public void CopyRow(int row, Span<sbyte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)row, (uint)Rows, nameof(row));
        var packed = Packed;
        for (int k = 0; k < Columns; k++)
            destination[k] = packed[Index(row, k)];
    }

    /// <summary>Writes output <paramref name="row"/>'s values (the quantizer, before the matrix is shared).</summary>
    internal void SetRow(int row, ReadOnlySpan<sbyte> values)
    {
        var packed = Packed;
        for (int k = 0; k < Columns; k++)
            packed[Index(row, k)] = values[k];
    }

    /// <summary>A matrix of the given shape whose values, scales and sums the quantizer then writes.</summary>
    internal static Int8Matrix Allocate(int rows, int columns) => new(rows, columns);

    private int Index(int row, int column) =>
        row / BlockRows * BlockRows * PaddedColumns + column / GroupColumns * (BlockRows * GroupColumns) + row % BlockRows * GroupColumns + column % GroupColumns;
}
