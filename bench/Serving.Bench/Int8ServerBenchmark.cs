using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Authoring.Synthetic;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// One stream through the server, bf16 against <c>--quantization int8</c> (bf16 compute), both servers up in this process
/// with the same eight rank-16 adapters available and one in use: rounds alternate one streamed greedy completion on each,
/// so both see the same machine state; tokens/s is the completion's tokens over its time from the first token to the last.
/// </summary>
internal sealed class Int8ServerBenchmark(string modelDir, int rounds, int tokens)
{
    public BenchReport Run()
    {
        string adapters = BenchModel.Derived(modelDir, "int8-server-adapters-8", staging =>
        {
            for (int i = 0; i < 8; i++)
                SyntheticAdapterWriter.Write(Path.Combine(staging, $"a{i}"), modelDir, 16, 32, SyntheticAdapterWriter.AllTargets, (ulong)(90 + i));
        });
        var report = new BenchReport($"One stream through the server, C = 1, adapter a0 of 8 available: bf16 vs int8, {rounds} alternating rounds of {tokens} tokens",
            "bf16", "int8", "int8 / bf16");
        report.Context("model_dir", modelDir);
        var bf16 = Start(adapters, "none");
        var int8 = Start(adapters, "int8");
        try
        {
            for (int warm = 0; warm < 2; warm++)
            {
                TokensPerSecond(bf16.Http, warm);
                TokensPerSecond(int8.Http, warm);
            }

            var a = new List<double>();
            var b = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                a.Add(TokensPerSecond(bf16.Http, 10 + round));
                b.Add(TokensPerSecond(int8.Http, 10 + round));
            }

            report.Add("decode tokens/s (p50 of rounds)", "tok/s", Stats.Median(a), Stats.Median(b), Stats.Median(b) / Stats.Median(a));
            report.Add("median of the rounds' own ratios", "x", null, null, Stats.Median(b.Zip(a, (q, f) => q / f)));
        }
        finally
        {
            bf16.Dispose();
            int8.Dispose();
        }

        return report;
    }

    private sealed record Running(WebApplication App, HttpClient Http) : IDisposable
    {
        public void Dispose()
        {
            Http.Dispose();
            App.StopAsync().GetAwaiter().GetResult();
            App.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private Running Start(string adapters, string quantization)
    {
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", "bench", "--dtype", "bfloat16",
            "--quantization", quantization, "--adapters", adapters, "--adapter-registry", Path.Combine(Path.GetTempPath(), $"int8-bench-registry-{quantization}-{Environment.ProcessId}.json"),
            "--max-sequences", "8", "--max-context", "512", "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Running(app, new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) });
    }

    private double TokensPerSecond(HttpClient http, int seed)
    {
        var (first, last, events) = StreamedCompletion.Run(http, new
        {
            model = "a0", prompt = $"Round {seed}: the int8 base serves this adapter as fast as its bytes allow", max_tokens = tokens,
            temperature = 0, ignore_eos = true, stream = true,
        });
        return (events - 1) / ((last - first) / 1000);
    }
}
