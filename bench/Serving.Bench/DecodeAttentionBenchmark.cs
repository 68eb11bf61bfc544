using System.Diagnostics;
using F = TorchSharp.torch.nn.functional;
using Serving.Engine.Kernels;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// One layer's decode attention at the bench preset's heads (16 query / 4 KV heads, D = 64) over a paged cache:
/// <see cref="PagedDecodeAttention"/> against what the model otherwise runs (index_select gathers + libtorch's fused
/// attention), at batch 32 and several context lengths, both dtypes. Interleaved, medians.
/// </summary>
internal sealed class DecodeAttentionBenchmark(int iterations)
{
    private const int Batch = 32, QueryHeads = 16, KvHeads = 4, HeadDim = 64, BlockSize = 16;
    private static readonly int[] Contexts = [80, 512, 2048];

    public BenchReport Run()
    {
        var report = new BenchReport("Decode attention, one layer: batch 32, 16/4 heads, D 64, paged cache (block 16), CPU", "float32", "bfloat16");
        report.Context("iterations", iterations);
        report.Context("threads", get_num_threads());
        Measure(ScalarType.Float32, [Contexts[0]]);     // the first ~100 ms of libtorch work after start-up run slow: not measured
        var results = new[] { ScalarType.Float32, ScalarType.BFloat16 }.Select(d => Measure(d, Contexts)).ToArray();
        foreach (int n in Contexts)
        {
            report.Add($"CPU kernel, context {n}", "µs", results[0][n].Kernel, results[1][n].Kernel);
            report.Add($"gathers + libtorch attention, context {n}", "µs", results[0][n].Libtorch, results[1][n].Libtorch);
            report.Add($"libtorch / CPU kernel, context {n}", "×", results[0][n].Libtorch / results[0][n].Kernel, results[1][n].Libtorch / results[1][n].Kernel);
            double bytes = 2.0 * Batch * KvHeads * n * HeadDim;
            report.Add($"CPU kernel K/V read rate, context {n}", "GB/s", bytes * 4 / (results[0][n].Kernel * 1e3), bytes * 2 / (results[1][n].Kernel * 1e3));
        }

        return report;
    }

    private Dictionary<int, (double Kernel, double Libtorch)> Measure(ScalarType dtype, int[] contexts)
    {
        var result = new Dictionary<int, (double, double)>();
        foreach (int n in contexts)
        {
            using var scope = NewDisposeScope();
            int blocksPerSequence = (n + BlockSize - 1) / BlockSize;
            long cacheRows = (long)Batch * blocksPerSequence * BlockSize;
            var keys = randn([KvHeads, cacheRows, HeadDim]).to(dtype);
            var values = randn([KvHeads, cacheRows, HeadDim]).to(dtype);
            var q = randn([Batch, QueryHeads, HeadDim]).to(dtype);
            // Blocks handed out in a shuffled order, as a long-running paged allocator leaves them.
            var random = new Random(n);
            var blocks = Enumerable.Range(0, Batch * blocksPerSequence).OrderBy(_ => random.Next()).ToArray();
            var rows = new long[Batch * n];
            for (int b = 0; b < Batch; b++)
                for (int j = 0; j < n; j++)
                    rows[b * n + j] = (long)blocks[b * blocksPerSequence + j / BlockSize] * BlockSize + j % BlockSize;
            var lengths = Enumerable.Repeat(n, Batch).ToArray();
            var rowTensor = tensor(rows, ScalarType.Int64);
            var kernel = new List<double>();
            var libtorch = new List<double>();
            for (int i = 0; i < iterations + 5; i++)
            {
                var sw = Stopwatch.StartNew();
                PagedDecodeAttention.Apply(q, keys, values, rows, n, lengths).Dispose();
                double k = sw.Elapsed.TotalMicroseconds;
                sw.Restart();
                using (var inner = NewDisposeScope())
                {
                    var kd = keys.index_select(1, rowTensor).view(KvHeads, Batch, n, HeadDim).transpose(0, 1);
                    var vd = values.index_select(1, rowTensor).view(KvHeads, Batch, n, HeadDim).transpose(0, 1);
                    F.scaled_dot_product_attention(q.view(Batch, KvHeads, QueryHeads / KvHeads, HeadDim), kd, vd).reshape(Batch, QueryHeads * HeadDim);
                }

                double l = sw.Elapsed.TotalMicroseconds;
                if (i >= 5)
                {
                    kernel.Add(k);
                    libtorch.Add(l);
                }
            }

            result[n] = (Stats.Median(kernel), Stats.Median(libtorch));
        }

        return result;
    }
}
