using System.Diagnostics;
using Serving.AdapterStore;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.AdapterStore.Tiers;
using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// Adapter store latencies and tier behaviour on the bench preset: a rank-16 adapter on all seven projections read
/// from local disk (PEFT parse + validation) into a device slot, copied from host memory into a slot, host memory per
/// cached adapter against its tensor bytes, and tier hit rates for Zipf(1.0) traffic over 1,000 adapters with 100
/// host-cached and 32 device slots. Given an S3-compatible endpoint (<c>--s3 http://127.0.0.1:5000</c>: moto_server,
/// MinIO), also S3 → device slot with a cold local disk cache each time (download, content hash, parse, copy).
/// </summary>
internal sealed class AdapterStoreBenchmark(string modelDir, int loads, string? s3Endpoint)
{
    public BenchReport Run()
    {
        var report = new BenchReport("Adapter store: bench preset, rank-16 adapter on all 7 projections (9.3 MB f32), CPU, bfloat16 slots", "value");
        using var loaded = LoadedModel.Load(modelDir, ScalarType.BFloat16, CPU, 1024);
        var arena = loaded.Model.EnableAdapters(32, 16);
        string adapterDir = BenchModel.Derived(modelDir, "adapter-r16", staging => SyntheticAdapterWriter.Write(staging, modelDir, 16, 32, SyntheticAdapterWriter.AllTargets, 7));
        long tensorBytes = new FileInfo(Path.Combine(adapterDir, "adapter_model.safetensors")).Length;
        report.Context("adapter_dir", Path.GetFullPath(adapterDir));
        report.Context("loads", loads);

        var disk = new List<double>();
        var host = new List<double>();
        LoraAdapterWeights? weights = null;
        for (int i = 0; i < loads + 5; i++)
        {
            var sw = Stopwatch.StartNew();
            weights = PeftAdapterReader.Read(adapterDir, "bench", loaded.Config, 16);
            arena.Load(i % arena.Slots, weights);
            if (i >= 5)
                disk.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            arena.Load((i + 1) % arena.Slots, weights);
            if (i >= 5)
                host.Add(sw.Elapsed.TotalMilliseconds);
        }

        disk.Sort();
        host.Sort();
        report.Add("local disk → device slot, p50 (target ≤ 50 ms; file in the OS page cache)", "ms", Stats.Percentile(disk, 0.5));
        report.Add("local disk → device slot, p99", "ms", Stats.Percentile(disk, 0.99));
        report.Add("host memory → device slot, p50 (target ≤ 5 ms)", "ms", Stats.Percentile(host, 0.5));
        report.Add("host memory → device slot, p99", "ms", Stats.Percentile(host, 0.99));

        (double P50, double P99)? s3 = s3Endpoint is null ? null : S3ToSlot(s3Endpoint, adapterDir, loaded.Config, arena, Math.Max(10, loads / 10));
        report.Add("S3 → device slot (cold disk cache), p50", "ms", s3?.P50);
        report.Add("S3 → device slot (cold disk cache), p99", "ms", s3?.P99);

        GC.Collect();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var kept = Enumerable.Range(0, 8).Select(_ => PeftAdapterReader.Read(adapterDir, "bench", loaded.Config, 16)).ToList();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        report.Add("host memory per cached adapter / its tensor bytes (target ≤ 1.1)", "×", (after - before) / 8.0 / tensorBytes);
        GC.KeepAlive(kept);

        var (device, hostHits, reads) = Zipf(1000, 100, 32, 50_000, weights!.ParameterCount);
        report.Add("Zipf(1.0), 1,000 adapters: device-slot hit rate", "%", device * 100);
        report.Add("Zipf(1.0): host-memory hit rate (of device misses)", "%", hostHits * 100);
        report.Add("Zipf(1.0): reads from disk/source per request", "%", reads * 100);
        return report;
    }

    /// <summary>Runs the real tier classes on a Zipf access stream (host reads return a shared array of the adapter's size).</summary>
    private static (double Device, double Host, double Reads) Zipf(int adapters, int hostCached, int slots, int requests, long parameters)
    {
        var shared = new LoraAdapterWeights("x", [new LoraModuleWeights(0, LoraTarget.Q, 1, 1, new float[parameters / 2], new float[parameters - parameters / 2])]);
        var cache = new HostAdapterCache(hostCached * parameters * sizeof(float), _ => shared);
        var table = new DeviceSlotTable(slots);
        var cdf = new double[adapters];
        double sum = 0;
        for (int k = 0; k < adapters; k++)
            cdf[k] = sum += 1.0 / (k + 1);
        var random = new SeededRandom(42);
        int deviceHits = 0, hostHits = 0, reads = 0;
        for (int r = 0; r < requests; r++)
        {
            double u = random.NextDouble() * sum;
            int rank = Array.BinarySearch(cdf, u);
            rank = rank < 0 ? ~rank : rank;
            var record = new AdapterRecord(AdapterId.Parse($"a{rank}"), "", "v1", DateTimeOffset.UnixEpoch);
            table.TryAcquire(new AdapterVersionKey(record.Id, record.Version), out var slot, out bool needsLoad);
            if (!needsLoad)
            {
                deviceHits++;
            }
            else
            {
                int missesBefore = cache.Misses;
                cache.GetOrLoad(record).Wait();
                if (cache.Misses == missesBefore)
                    hostHits++;
                else
                    reads++;
            }

            table.Release(slot);
        }

        int deviceMisses = requests - deviceHits;
        return (deviceHits / (double)requests, deviceMisses == 0 ? 0 : hostHits / (double)deviceMisses, reads / (double)requests);
    }

    private static (double P50, double P99) S3ToSlot(string endpoint, string adapterDir, Serving.Contracts.Configuration.ModelConfig config, LoraSlotArena arena, int count)
    {
        string cache = Path.Combine(Path.GetTempPath(), "serving-bench-s3-" + Guid.NewGuid().ToString("N"));
        var options = new S3SourceOptions { ServiceUrl = endpoint, AccessKey = "testing", SecretKey = "testing" };
        using var source = S3AdapterSource.Create(options, cache, 1L << 30, 1L << 32);
        using var client = new Amazon.S3.AmazonS3Client(new Amazon.Runtime.BasicAWSCredentials("testing", "testing"),
            new Amazon.S3.AmazonS3Config { ServiceURL = endpoint, ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        client.PutBucketAsync("serving-bench").GetAwaiter().GetResult();
        foreach (string file in Directory.GetFiles(adapterDir))
            client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = "serving-bench", Key = "r16/" + Path.GetFileName(file), FilePath = file })
                .GetAwaiter().GetResult();
        const string uri = "s3://serving-bench/r16";
        var policy = Serving.AdapterStore.Files.AdapterReadPolicy.Trusted(1L << 30, TimeSpan.FromMinutes(1));
        var fetched = source.FetchAsync(uri, "bench-s3", policy, CancellationToken.None).GetAwaiter().GetResult();
        string folder = fetched.Folder;
        var record = new AdapterRecord(AdapterId.Parse("bench-s3"), uri, fetched.Version, DateTimeOffset.UtcNow);
        var times = new List<double>();
        try
        {
            for (int i = 0; i < count + 2; i++)
            {
                Directory.Delete(folder, recursive: true);                      // cold: the disk cache lost it
                var sw = Stopwatch.StartNew();
                var weights = PeftAdapterReader.Read(source.Load(record, policy, CancellationToken.None), "bench-s3", config, 16);
                arena.Load(i % arena.Slots, weights);
                if (i >= 2)
                    times.Add(sw.Elapsed.TotalMilliseconds);
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }

        times.Sort();
        return (Stats.Percentile(times, 0.5), Stats.Percentile(times, 0.99));
    }

}
