using System.Diagnostics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Authoring.Synthetic;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// What <c>model: "auto"</c> costs: time to first token of a 64-token prompt naming one adapter vs routed by Arrow among 32
/// rank-16 candidates (prototypes already computed: they are per version, made once), on the bench preset in bf16,
/// one request at a time, interleaved, medians; for routing over the first layer and over all layers.
/// </summary>
internal sealed class RoutingBenchmark(string modelDir, int requests)
{
    public BenchReport Run()
    {
        string adapters = BenchModel.Derived(modelDir, "candidate-adapters-32", staging =>
        {
            for (int i = 0; i < 32; i++)
                SyntheticAdapterWriter.Write(Path.Combine(staging, $"cand-{i}"), modelDir, 16, 32, SyntheticAdapterWriter.AllTargets, (ulong)(500 + i));
        });
        var report = new BenchReport("Routing cost: TTFT, bench preset (bf16), 64-token prompt, 32 rank-16 candidates", "route over layer 1", "route over all layers");
        report.Context("requests", requests);
        var results = new[] { 1, 0 }.Select(layers => Measure(adapters, layers)).ToArray();
        report.Add("TTFT p50, named adapter", "ms", results.Select(r => (double?)r.Named).ToArray());
        report.Add("TTFT p50, model auto (32 candidates)", "ms", results.Select(r => (double?)r.Auto).ToArray());
        report.Add("auto / named TTFT (target ≤ 1.10)", "×", results.Select(r => (double?)(r.Auto / r.Named)).ToArray());
        return report;
    }

    private (double Named, double Auto) Measure(string adapters, int layers)
    {
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--adapters", adapters, "--dtype", "bfloat16",
            "--max-adapter-slots", "32", "--max-context", "256", "--Serving:Routing:Layers", layers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--adapter-registry", Path.Combine(Path.GetTempPath(), "serving-bench-routing-registry.json"), "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
            var prompt = Enumerable.Range(0, 64).Select(t => 100 + (t * 37 % 20000)).ToArray();
            double Ttft(object body)
            {
                var sw = Stopwatch.StartNew();
                using var response = http.PostAsJsonAsync("/v1/completions", body).GetAwaiter().GetResult();
                response.EnsureSuccessStatusCode();
                return sw.Elapsed.TotalMilliseconds;                // max_tokens 1: the whole answer is the first token
            }

            var named = new { model = "cand-3", prompt, max_tokens = 1, temperature = 0 };
            var auto = new { model = "auto", prompt, max_tokens = 1, temperature = 0 };
            for (int i = 0; i < 3; i++)
            {
                Ttft(named);
                Ttft(auto);                                         // first auto computes all 32 prototypes
            }

            var samples = new[] { new List<double>(), new List<double>() };
            for (int i = 0; i < requests; i++)
            {
                samples[0].Add(Ttft(named));
                samples[1].Add(Ttft(auto));
            }

            return (Stats.Median(samples[0]), Stats.Median(samples[1]));
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)app).Dispose();
        }
    }

}
