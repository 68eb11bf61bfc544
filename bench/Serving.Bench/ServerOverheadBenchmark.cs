using System.Diagnostics;
using System.Net.Http.Json;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Batching;
using Serving.Contracts;
using Serving.Runtime.Generation;
using Serving.Server;
using Serving.V1;
using Serving.Contracts.Generation;

namespace Serving.Bench;

/// <summary>
/// What the server layer costs per request: a 1-token greedy completion on the demo model through REST
/// (<c>/v1/completions</c>) and native gRPC on loopback, against the same request handed to the engine in-process
/// (<see cref="GenerationClient"/>), interleaved, medians; then sustained requests/s with concurrent clients.
/// </summary>
internal sealed class ServerOverheadBenchmark(int requests, int clients, double seconds)
{
    public BenchReport Run()
    {
        var report = new BenchReport("Server layer: 1-token completions on the demo model, loopback", "in-process", "REST", "gRPC");
        report.Context("requests", requests);
        report.Context("clients", clients);
        string cache = Path.Combine(Path.GetTempPath(), "serving-bench-server");
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--cache-dir", cache, "--dtype", "float32", "--max-sequences", "32",
            "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            using var channel = GrpcChannel.ForAddress(address);
            var grpc = new V1.Generation.GenerationClient(channel);
            var engine = app.Services.GetRequiredService<GenerationClient>();
            var model = app.Services.GetRequiredService<Serving.Runtime.Hosting.ModelHost>().Served;
            var prompt = model.Encode("overhead", addSpecialTokens: true);
            var sampling = new SamplingParams { Temperature = 0, MaxTokens = 1 };

            async Task InProcess()
            {
                await foreach (var _ in engine.SubmitAsync(new Serving.Runtime.Generation.GenerationRequest(prompt, sampling, Serving.Runtime.Generation.PinnedAdapters.None), CancellationToken.None))
                {
                }
            }

            async Task Rest()
            {
                using var response = await http.PostAsJsonAsync("/v1/completions", new { model = "serving-demo-tiny", prompt = "overhead", max_tokens = 1, temperature = 0 });
                response.EnsureSuccessStatusCode();
                await response.Content.ReadAsByteArrayAsync();
            }

            Task Grpc() => grpc.GenerateAsync(new GenerateRequest { Model = "serving-demo-tiny", Prompt = "overhead", MaxTokens = 1, Temperature = 0 }).ResponseAsync;

            Func<Task>[] variants = [InProcess, Rest, Grpc];
            var samples = variants.Select(_ => new List<double>()).ToArray();
            for (int i = 0; i < requests + 20; i++)
                for (int v = 0; v < variants.Length; v++)
                {
                    var sw = Stopwatch.StartNew();
                    variants[v]().GetAwaiter().GetResult();
                    if (i >= 20)
                        samples[v].Add(sw.Elapsed.TotalMilliseconds);
                }

            double[] p50 = samples.Select(s => Stats.Percentile(s, 0.5)).ToArray();
            report.Add("latency p50, one request at a time", "ms", p50.Select(x => (double?)x).ToArray());
            report.Add("latency p99, one request at a time", "ms", samples.Select(s => (double?)Stats.Percentile(s, 0.99)).ToArray());
            report.Add("server layer overhead p50 vs in-process (target ≤ 1 ms)", "ms", null, p50[1] - p50[0], p50[2] - p50[0]);
            report.Add($"sustained requests/s, {clients} concurrent clients", "req/s",
                variants.Select(v => (double?)Sustained(v)).ToArray());
            return report;
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)app).Dispose();
        }
    }

    private double Sustained(Func<Task> request)
    {
        long done = 0;
        var until = Stopwatch.StartNew();
        Task.WaitAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            while (until.Elapsed.TotalSeconds < seconds)
            {
                await request();
                Interlocked.Increment(ref done);
            }
        })).ToArray());
        return done / until.Elapsed.TotalSeconds;
    }
}
