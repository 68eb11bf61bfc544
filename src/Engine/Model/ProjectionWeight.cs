using F = TorchSharp.torch.nn.functional;
using Serving.Engine.Kernels;
using Serving.Engine.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// A projection (or embedding) matrix <c>W [N, K]</c> in HF's [out, in] layout, held as a plain tensor, or for bfloat16
/// on a CPU with AMX only in <see cref="AmxPackedWeight"/>'s tile layout (a decode step streams each weight once instead
/// of three times), or quantized to int8 per output row (<see cref="Int8Matrix"/>, <c>--quantization int8</c>: half of
/// bf16's bytes; inputs and outputs stay in the compute dtype, <see cref="Int8Linear"/> quantizes the input rows per call),
/// or as its checkpoint's MXFP4 (<see cref="Mxfp4Matrix"/>, gpt-oss's experts on the CPU: the dequantized values exactly,
/// at 4.25 bits a weight, run by <see cref="Mxfp4Gemv"/>).
/// Callers see the same maths in every form (the int8 form's W is <c>Scales[n]·Values[n, k]</c>):
/// <code>Apply(x [M, K], bias [N]?) = x · Wᵀ + bias → [M, N]        Rows(ids [R]) = W[ids, :] → [R, K]</code>
/// A plain bf16 or float32 weight applied to at most <see cref="SmallBatchGemv.MaxRows"/> rows can run on
/// <see cref="SmallBatchGemv"/> (the caller's kernel selection says whether), which reads the weight once at the bandwidth bound.
/// </summary>
public sealed class ProjectionWeight : IDisposable
{
    private readonly Tensor? _plain;
    private readonly AmxPackedWeight? _packed;
    private readonly Int8Matrix? _int8;
    private readonly Mxfp4Matrix? _mxfp4;

    /// <summary>A plain contiguous bf16 or float32 CPU weight's address, read once (the tensor never moves); 0 otherwise.</summary>
    private readonly nint _plainAddress;

    private ProjectionWeight(Tensor? plain, AmxPackedWeight? packed)
    {
        _plain = plain;
        _packed = packed;
        Outputs = packed?.Outputs ?? plain!.size(0);
        Inputs = packed?.Inputs ?? plain!.size(1);
        if (plain is not null && plain.dtype is ScalarType.BFloat16 or ScalarType.Float32 && plain.device_type == DeviceType.CPU && plain.is_contiguous())
        {
            _plainAddress = Runtime.CpuTensorMemory.AddressOf(plain);
            Dtype = plain.dtype;
        }
        else
        {
            Dtype = packed is not null ? ScalarType.BFloat16 : plain!.dtype;
        }
    }

    private ProjectionWeight(Mxfp4Matrix mxfp4, ScalarType dtype)
    {
        _mxfp4 = mxfp4;
        Outputs = mxfp4.Rows;
        Inputs = mxfp4.Columns;
        Dtype = dtype;
    }

    /// <summary>An MXFP4 weight for a CPU model computing in <paramref name="dtype"/> (bfloat16 or float32), which its inputs and outputs take.</summary>
    public static ProjectionWeight CreateMxfp4(Mxfp4Matrix weight, ScalarType dtype) => dtype is ScalarType.BFloat16 or ScalarType.Float32
        ? new ProjectionWeight(weight, dtype)
        : throw new ArgumentException($"MXFP4 weights serve bfloat16 or float32 models, not {dtype}", nameof(dtype));

    /// <summary>True when held as MXFP4.</summary>
    public bool IsMxfp4 => _mxfp4 is not null;

    private ProjectionWeight(Int8Matrix int8, ScalarType dtype)
    {
        _int8 = int8;
        Outputs = int8.Rows;
        Inputs = int8.Columns;
        Dtype = dtype;
    }

    /// <summary>
    /// Quantizes <paramref name="weight"/> (any float dtype, CPU; disposed here) per output row to int8, for a model that
    /// computes in <paramref name="dtype"/> (bfloat16 or float32).
    /// </summary>
    public static unsafe ProjectionWeight CreateInt8(Tensor weight, ScalarType dtype)
    {
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
            throw new ArgumentException($"int8 weights serve bfloat16 or float32 models, not {dtype}", nameof(dtype));
        if (weight.device_type != DeviceType.CPU)
            throw new ArgumentException("int8 weights are quantized on the CPU", nameof(weight));
        using (weight)
        using (var source = weight.to(ScalarType.Float32).contiguous())
            return new ProjectionWeight(Int8Quantizer.QuantizeRows((float*)Runtime.CpuTensorMemory.Address(source), (int)source.size(0), (int)source.size(1)), dtype);
    }

    /// <summary>Takes ownership of <paramref name="weight"/>; with <paramref name="packForAmx"/> and AMX support it is packed (in place where the shape allows).</summary>
    public static ProjectionWeight Create(Tensor weight, bool packForAmx)
    {
        if (!packForAmx || !AmxPackedWeight.Supports(weight))
            return new ProjectionWeight(weight, null);
        return new ProjectionWeight(null, AmxPackedWeight.Pack(weight));
    }

    /// <summary>The element type of the weight's inputs and outputs (bfloat16 when packed; the compute dtype when int8).</summary>
    public ScalarType Dtype { get; }

    /// <summary>True when held in the AMX tile layout.</summary>
    public bool IsPacked => _packed is not null;

    /// <summary>True when held as int8 (<see cref="Int8Matrix"/>).</summary>
    public bool IsQuantized => _int8 is not null;

    /// <summary>True when <see cref="LinearRaw"/> takes any number of rows (packed or int8), not only a small batch.</summary>
    public bool TakesAnyRowCount => _packed is not null || _int8 is not null || _mxfp4 is not null;

    public long Outputs { get; }

    public long Inputs { get; }

    /// <summary>Bytes per weight element as held: 1 for int8, 2 when packed, else the tensor's.</summary>
    public long ElementSize => _int8 is not null || _mxfp4 is not null ? 1 : _packed is not null ? 2 : _plain!.ElementSize;

    /// <summary>Bytes of weight data held (padding of the packed layout, and int8's scales and row sums, included).</summary>
    public long Bytes => _int8?.Bytes ?? _mxfp4?.Bytes ?? _packed?.Bytes ?? _plain!.NumberOfElements * _plain.ElementSize;

    /// <summary>
    /// x <c>[M, K]</c> → <c>[M, N]</c> in the weight's dtype, or in float32 with <paramref name="float32Output"/>: the same values
    /// cast (the packed kernel writes them so in its one pass; the lm_head's logits are wanted in float32).
    /// </summary>
    /// <param name="x">Input rows.</param>
    /// <param name="bias">Added to every row.</param>
    /// <param name="float32Output">Logits: float32 whatever the weight's dtype.</param>
    /// <param name="smallBatchKernel">The model's selection allows <see cref="SmallBatchGemv"/> for a few rows.</param>
    public Tensor Apply(Tensor x, Tensor? bias = null, bool float32Output = false, bool smallBatchKernel = false)
    {
        if (_mxfp4 is not null && x.NumberOfElements / Inputs > Mxfp4Gemv.MaxRows)
        {
            // A prefill's many rows are compute-bound: the dequantized weight through libtorch's GEMM, not the GEMV kernel.
            using var weight = RowSlice(0, Outputs);
            var dense = F.linear(x, weight, bias);
            if (!float32Output || dense.dtype == ScalarType.Float32)
                return dense;
            using (dense)
                return dense.to(ScalarType.Float32);
        }

        if (_int8 is not null || _mxfp4 is not null)
            return ApplyQuantized(x, bias, float32Output);
        if (_packed is not null && x.device_type == DeviceType.CPU && x.dtype == ScalarType.BFloat16 && !x.requires_grad)
            return _packed.Linear(x, bias, float32Output);
        if (smallBatchKernel && FitsSmallBatchKernel(x, bias))
            return SmallBatch(x, bias, float32Output);
        var y = F.linear(x, _plain ?? throw new InvalidOperationException("a packed weight takes only bf16 CPU inputs outside autograd"), bias);
        if (!float32Output || y.dtype == ScalarType.Float32)
            return y;
        using (y)
            return y.to(ScalarType.Float32);
    }

    private bool FitsSmallBatchKernel(Tensor x, Tensor? bias) =>
        _plain is not null && x.device_type == DeviceType.CPU && _plain.device_type == DeviceType.CPU && x.dim() == 2
        && x.size(0) >= 1 && x.size(0) <= SmallBatchGemv.MaxRows && x.size(1) == _plain.size(1) && x.dtype == _plain.dtype
        && x.dtype is ScalarType.BFloat16 or ScalarType.Float32 && !x.requires_grad && !_plain.requires_grad && x.is_contiguous() && _plain.is_contiguous()
        && (bias is null || bias.dtype == x.dtype && bias.device_type == DeviceType.CPU && bias.is_contiguous() && bias.NumberOfElements == _plain.size(0));

    private unsafe Tensor SmallBatch(Tensor x, Tensor? bias, bool float32Output)
    {
        int rows = (int)x.size(0);
        long k = x.size(1), n = _plain!.size(0);
        bool bf16 = x.dtype == ScalarType.BFloat16;
        var y = empty([rows, n], float32Output || !bf16 ? ScalarType.Float32 : ScalarType.BFloat16);
        nint xp = (nint)Runtime.CpuTensorMemory.Address(x), wp = (nint)Runtime.CpuTensorMemory.Address(_plain), yp = (nint)Runtime.CpuTensorMemory.Address(y);
        nint bp = bias is null ? 0 : (nint)Runtime.CpuTensorMemory.Address(bias);
        if (bf16)
            SmallBatchGemv.Bf16(xp, rows, k, wp, bp, n, yp, n, float32Output);
        else
            SmallBatchGemv.F32(xp, rows, k, wp, bp, n, yp, n);
        return y;
    }

    private unsafe Tensor ApplyQuantized(Tensor x, Tensor? bias, bool float32Output)
    {
        string form = _int8 is not null ? "an int8" : "an MXFP4";
        if (x.device_type != DeviceType.CPU || x.dtype != Dtype || x.requires_grad || x.size(-1) != Inputs)
            throw new InvalidOperationException($"{form} weight takes {Dtype} CPU inputs of {Inputs} columns outside autograd, not {x.dtype} on {x.device_type} of {x.size(-1)}");
        if (bias is not null && (bias.dtype != Dtype || bias.device_type != DeviceType.CPU || bias.NumberOfElements != Outputs))
            throw new InvalidOperationException($"{form} weight's bias is [{Outputs}] {Dtype} on the CPU");
        long rows = x.NumberOfElements / Inputs;
        long[] shape = [.. x.shape[..^1], Outputs];
        var y = empty(shape, float32Output ? ScalarType.Float32 : Dtype);
        if (rows == 0)
            return y;
        using var input = x.contiguous();
        using var b = bias?.contiguous();
        LinearRaw(Runtime.CpuTensorMemory.Address(input), checked((int)rows), b is null ? null : Runtime.CpuTensorMemory.Address(b), Runtime.CpuTensorMemory.Address(y),
            float32Output);
        return y;
    }

    /// <summary>
    /// True when <see cref="LinearRaw"/> takes <paramref name="rows"/> rows of <paramref name="dtype"/>: an AMX-packed
    /// weight any number of bf16 rows, an int8 weight any number of rows of its dtype, a plain contiguous CPU weight of that dtype (bf16 or float32) up to
    /// <see cref="SmallBatchGemv.MaxRows"/> when the small-batch kernel is there.
    /// </summary>
    public bool RunsOnRawMemory(int rows, ScalarType dtype) => _int8 is not null || _mxfp4 is not null ? rows >= 1 && dtype == Dtype
        : _packed is not null ? dtype == ScalarType.BFloat16
        : rows >= 1 && rows <= SmallBatchGemv.MaxRows && SmallBatchGemv.IsAvailable && _plainAddress != 0 && Dtype == dtype;

    /// <summary>
    /// x <c>[rows, K]</c> at <paramref name="x"/> → y <c>[rows, N]</c> at <paramref name="y"/>, bias <c>[N]</c> or none, all
    /// in the weight's dtype, except y in float32 with <paramref name="float32Output"/> (a float32 weight's y always is):
    /// the fused decode path's projection on raw memory, where <see cref="RunsOnRawMemory"/> holds.
    /// </summary>
    public unsafe void LinearRaw(void* x, int rows, void* bias, void* y, bool float32Output)
    {
        if (_int8 is not null)
            Int8Linear.Apply(_int8, x, Dtype == ScalarType.BFloat16, rows, bias, y, Outputs, float32Output);
        else if (_mxfp4 is not null)
            Mxfp4Gemv.Apply(_mxfp4, x, rows, Dtype == ScalarType.BFloat16, bias, y, float32Output);
        else if (_packed is not null)
            _packed.Linear((ushort*)x, rows, (ushort*)bias, y, float32Output);
        else if (!RunsOnRawMemory(rows, Dtype))
            throw new InvalidOperationException($"a plain weight runs {rows} rows on raw memory only through the small-batch kernel ({SmallBatchGemv.Status})");
        else if (Dtype == ScalarType.BFloat16)
            SmallBatchGemv.Bf16((nint)x, rows, Inputs, _plainAddress, (nint)bias, Outputs, (nint)y, Outputs, float32Output);
        else
            SmallBatchGemv.F32((nint)x, rows, Inputs, _plainAddress, (nint)bias, Outputs, (nint)y, Outputs);
    }

    /// <summary>
    /// Output rows [<paramref name="offset"/>, offset + <paramref name="count"/>) of the weight <c>[count, K]</c>: a view of a
    /// plain weight (no copy), unpacked rows of a packed one, dequantized rows of an int8 one.
    /// </summary>
    public Tensor RowSlice(long offset, long count)
    {
        if (_int8 is not null || _mxfp4 is not null)
            return Dequantized(Enumerable.Range((int)offset, (int)count));
        if (_packed is null)
            return _plain!.narrow(0, offset, count);
        using var ids = Runtime.TorchScalars.PlusInPlace(Runtime.TorchScalars.Range(count, ScalarType.Int64, torch.CPU), offset);    // packing is CPU-only (AMX)
        return _packed.Rows(ids);
    }

    /// <summary>ids <c>[R]</c> → <c>[R, K]</c>: embedding lookups.</summary>
    public Tensor Rows(Tensor ids)
    {
        if (_int8 is null && _mxfp4 is null)
            return _packed is not null ? _packed.Rows(ids) : _plain!.index_select(0, ids);
        using var host = ids.device_type == DeviceType.CPU ? ids.to(ScalarType.Int64) : ids.to(ScalarType.Int64).cpu();
        return Dequantized(host.data<long>().Select(id => checked((int)id)));
    }

    /// <summary>Rows of an int8 or MXFP4 weight as <c>[R, K]</c> in <see cref="Dtype"/>.</summary>
    private Tensor Dequantized(IEnumerable<int> rows)
    {
        var ids = rows.ToArray();
        int k = (int)Inputs;
        var values = new float[ids.Length * k];
        for (int r = 0; r < ids.Length; r++)
        {
            if ((uint)ids[r] >= (uint)Outputs)
                throw new ArgumentOutOfRangeException(nameof(rows), ids[r], $"row {ids[r]} of a weight of {Outputs} rows");
            if (_int8 is not null)
                Int8Quantizer.DequantizeRows(_int8, ids[r], 1, values.AsSpan(r * k, k));
            else
                _mxfp4!.Dequantize(ids[r], 1, values.AsSpan(r * k, k));
        }

        using var rowsF32 = tensor(values, [ids.Length, k]);
        return rowsF32.to(Dtype);
    }

    public void Dispose()
    {
        _plain?.Dispose();
        _packed?.Dispose();
    }
}
