using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// The S3-protocol store (moto) stopped in the middle of a run: requests for warm adapters (already fetched) keep
/// succeeding with their exact answers, cold registrations fail fast with 503, and once the store is back on the same
/// port the breaker closes and cold registrations succeed again — all while the warm traffic goes on.
/// </summary>
public sealed class StoreOutageUnderLoadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("outage");
    private readonly CapturedLogs _logs = new();
    private MotoS3Server _s3 = null!;
    private ServerProcess _server = null!;
    private string _adapter = "";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 91 });
        _adapter = Path.Combine(_root, "adapter");
        SyntheticAdapterWriter.Write(_adapter, model, 8, 16, ["q_proj", "v_proj"], 9);
        _s3 = await MotoS3Server.StartAsync();
        await Seed();
        _server = await ServerProcess.StartAsync(_logs.AddTo, "--model", model, "--dtype", "float32", "--cache-dir", Path.Combine(_root, "cache"),
            "--max-sequences", "8", "--max-adapter-slots", "4",
            "--Serving:Adapters:S3:ServiceUrl", _s3.Url, "--Serving:Adapters:S3:AccessKey", MotoS3Server.AccessKey,
            "--Serving:Adapters:S3:SecretKey", MotoS3Server.SecretKey, "--Serving:Adapters:S3:BreakSeconds", "1");
    }

    private async Task Seed()
    {
        await _s3.Client.PutBucketAsync("adapters");
        await _s3.UploadFolderAsync("adapters", "fleet/model", _adapter);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _s3.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<(int Status, string Body, double Seconds)> Load(string name)
    {
        var clock = Stopwatch.StartNew();
        using var response = await _server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = "s3://adapters/fleet/model" });
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), clock.Elapsed.TotalSeconds);
    }

    private async Task<string> Greedy(string model)
    {
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model, prompt = "outage", max_tokens = 6, temperature = 0, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        return (string)body["choices"]![0]!["text"]!;
    }

    [Fact]
    public async Task StoreDownMidRun_WarmKeepServingColdFailFastBreakerRecovers()
    {
        for (int i = 0; i < 3; i++)
            Assert.Equal(200, (await Load($"warm-{i}")).Status);
        string expected = await Greedy("warm-0");

        // Warm traffic through the whole run; each answer must be the warm adapter's exact answer.
        var phase = 0;                                                   // 0 store up, 1 store down, 2 store back
        var latencies = new ConcurrentDictionary<int, ConcurrentBag<double>>();
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var traffic = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            int n = 0;
            while (!stop.IsCancellationRequested)
            {
                var clock = Stopwatch.StartNew();
                try
                {
                    string text = await Greedy($"warm-{n++ % 3}");
                    if (text != expected)
                        failures.Enqueue($"phase {Volatile.Read(ref phase)}: a warm adapter answered differently");
                    latencies.GetOrAdd(Volatile.Read(ref phase), _ => []).Add(clock.Elapsed.TotalMilliseconds);
                }
                catch (Exception ex)
                {
                    failures.Enqueue($"phase {Volatile.Read(ref phase)}: {ex.Message}");
                }
            }
        })).ToArray();

        await Task.Delay(TimeSpan.FromSeconds(2));
        int port = _s3.Port;
        await _s3.DisposeAsync();
        Volatile.Write(ref phase, 1);
        var cold = new List<(int Status, string Body, double Seconds)>();
        for (int i = 0; i < 6; i++)
        {
            cold.Add(await Load($"cold-{i}"));
            await Task.Delay(200);
        }

        _s3 = await MotoS3Server.StartAsync(port);
        await Seed();
        Volatile.Write(ref phase, 2);
        await Task.Delay(TimeSpan.FromSeconds(1.2));                   // the breaker's open period
        var recovered = await Load("after-outage");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        await Task.WhenAll(traffic);

        double P50(int p) => latencies.TryGetValue(p, out var bag) && !bag.IsEmpty ? bag.Order().ElementAt(bag.Count / 2) : double.NaN;
        output.WriteLine($"warm requests: up {latencies.GetValueOrDefault(0)?.Count} (p50 {P50(0):F1} ms), down {latencies.GetValueOrDefault(1)?.Count} (p50 {P50(1):F1} ms), " +
            $"back {latencies.GetValueOrDefault(2)?.Count} (p50 {P50(2):F1} ms); failures {failures.Count}; cold loads while down: " +
            string.Join(", ", cold.Select(c => $"{c.Status} in {c.Seconds * 1000:F0} ms")) + $"; after restart: {recovered.Status} in {recovered.Seconds * 1000:F0} ms");
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
        Assert.True(latencies.GetValueOrDefault(1)?.Count > 0, "no warm request ran while the store was down");
        Assert.All(cold, c => Assert.True(c.Status == 503, c.Body));
        // Refused connections fail at once: no cold load may wait out a response timeout (3 s by default). Looser than the
        // ~0.2 s the attempts and backoff take alone, as this runs under load beside other tests on 2 cores.
        Assert.All(cold, c => Assert.True(c.Seconds < 3, $"a cold load took {c.Seconds:F2} s with the store down"));
        Assert.True(recovered.Status == 200, recovered.Body);
        Assert.Equal(expected, await Greedy("after-outage"));
    }
}
