using F = TorchSharp.torch.nn.functional;
using Serving.Engine.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

public sealed class PagedDecodeAttentionTests
{
    /// <summary>The kernel against libtorch's fused attention over gathered K/V with a length mask, on random shapes and page layouts.</summary>
    [Theory]
    [InlineData(ScalarType.Float32, 1, 4, 4, 16, 37)]     // one sequence, no grouping
    [InlineData(ScalarType.Float32, 5, 16, 4, 64, 80)]    // the bench preset's heads, mixed lengths
    [InlineData(ScalarType.Float32, 3, 8, 1, 128, 19)]    // multi-query, D = 128
    [InlineData(ScalarType.Float32, 7, 6, 3, 32, 1)]      // a sequence of one position
    [InlineData(ScalarType.BFloat16, 5, 16, 4, 64, 80)]
    [InlineData(ScalarType.BFloat16, 4, 8, 2, 128, 300)]
    [InlineData(ScalarType.BFloat16, 3, 14, 2, 64, 45)]   // 7 query heads per KV head: one block of 4 heads, 3 alone
    [InlineData(ScalarType.Float32, 2, 12, 2, 96, 23)]    // 6 per KV head, D = 3 pairs of 16
    public void Apply_RandomPagedCache_MatchesLibtorchAttention(ScalarType dtype, int sequences, int hq, int hkv, int d, int maxLength)
    {
        var random = new Random(sequences * 1000 + d);
        long cacheRows = 4L * sequences * maxLength + 7;
        using var scope = NewDisposeScope();
        manual_seed(sequences + d);
        var keys = randn([hkv, cacheRows, d]).to(dtype);
        var values = randn([hkv, cacheRows, d]).to(dtype);
        var q = randn([sequences, hq, d]).to(dtype);
        if (!PagedDecodeAttention.Supports(q, keys))
            return;   // a CPU without AVX-512: the model never calls the kernel there (LlamaModel checks Supports)
        var lengths = Enumerable.Range(0, sequences).Select(b => b == 0 ? maxLength : random.Next(1, maxLength + 1)).ToArray();
        // Distinct rows scattered over the cache, as a paged allocator leaves them.
        var free = Enumerable.Range(0, (int)cacheRows).OrderBy(_ => random.Next()).ToArray();
        var rows = new long[sequences * maxLength];
        for (int i = 0; i < rows.Length; i++)
            rows[i] = free[i];

        var fast = PagedDecodeAttention.Apply(q, keys, values, rows, maxLength, lengths);
        var expected = Reference(q, keys, values, rows, maxLength, lengths);

        Assert.Equal(new long[] { sequences, (long)hq * d }, fast.shape);
        Assert.Equal(dtype, fast.dtype);
        double tolerance = dtype == ScalarType.Float32 ? 1e-5 : 2e-2;
        double error = (fast.to(ScalarType.Float32) - expected).abs().max().item<float>();
        Assert.True(error <= tolerance, $"max |fast − libtorch| = {error}");
    }

    [Fact]
    public void Apply_LengthBeyondTheRowTable_Throws()
    {
        using var keys = zeros([2, 32, 16]);
        using var q = zeros([1, 2, 16]);
        var e = Assert.Throws<ArgumentException>(() => PagedDecodeAttention.Apply(q, keys, keys, new long[8], 8, [9]));
        Assert.Contains("context length 9", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Supports_HeadDimNotAMultipleOf16_IsFalse()
    {
        using var keys = zeros([2, 32, 24]);
        using var q = zeros([1, 2, 24]);
        Assert.False(PagedDecodeAttention.Supports(q, keys));
        Assert.Equal(VectorExp.IsSupported, PagedDecodeAttention.Supports(q.narrow(2, 0, 16), keys.narrow(2, 0, 16).contiguous()));
    }

    /// <summary>float32 attention per sequence over its gathered rows.</summary>
    private static Tensor Reference(Tensor q, Tensor keys, Tensor values, long[] rows, int stride, int[] lengths)
    {
        int hkv = (int)keys.shape[0], hq = (int)q.shape[1], d = (int)q.shape[2];
        var outputs = new List<Tensor>();
        for (int b = 0; b < lengths.Length; b++)
        {
            using var index = tensor(rows.AsSpan(b * stride, lengths[b]).ToArray(), ScalarType.Int64);
            var k = keys.index_select(1, index).to(ScalarType.Float32).unsqueeze(0);               // [1, Hkv, n, D]
            var v = values.index_select(1, index).to(ScalarType.Float32).unsqueeze(0);
            var qb = q[b].to(ScalarType.Float32).view(1, hkv, hq / hkv, d);                      // [1, Hkv, G, D]
            outputs.Add(F.scaled_dot_product_attention(qb, k, v).reshape(1, (long)hq * d));
        }

        return cat(outputs, 0);
    }
}
