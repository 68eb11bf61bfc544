using System.Diagnostics;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// What priority scheduling buys an interactive request on a saturated server, and what it costs the background work:
/// the bench preset (bf16) with 8 rows, <c>background</c> closed-loop clients streaming long jobs (more than the rows, so
/// a queue stands), and one interactive client sending short requests one after another. Run twice on fresh servers:
/// first come, first served (every request priority 0), then <c>--scheduling-policy priority</c> (background 10,
/// interactive 0). Reported: the interactive requests' time to first token and to their last token, the background
/// jobs' tokens per second over the same window (counted as jobs complete), and the preemptions the server counted.
/// </summary>
internal sealed class PriorityBenchmark(string modelDir, int background, int interactive, int backgroundTokens)
{
    private const int Rows = 8, InteractiveTokens = 16;

    public BenchReport Run()
    {
        var report = new BenchReport($"Priority scheduling: {interactive} interactive requests ({InteractiveTokens} tokens) among {background} background streams "
            + $"({backgroundTokens} tokens each, closed loop), {Rows} rows, bench preset (bf16)", "fcfs", "priority", "priority / fcfs");
        report.Context("model_dir", modelDir);
        var fcfs = Measure(priority: false);
        var urgent = Measure(priority: true);
        report.Add("interactive: time to first token, median", "ms", fcfs.FirstMs.Median, urgent.FirstMs.Median, urgent.FirstMs.Median / fcfs.FirstMs.Median);
        report.Add("interactive: time to first token, p90", "ms", fcfs.FirstMs.P90, urgent.FirstMs.P90, urgent.FirstMs.P90 / fcfs.FirstMs.P90);
        report.Add("interactive: time to last token, median", "ms", fcfs.LastMs.Median, urgent.LastMs.Median, urgent.LastMs.Median / fcfs.LastMs.Median);
        report.Add("background: generated tokens/s while measured", "tok/s", fcfs.BackgroundTokensPerSecond, urgent.BackgroundTokensPerSecond,
            urgent.BackgroundTokensPerSecond / fcfs.BackgroundTokensPerSecond);
        report.Add("preemptions", "", fcfs.Preemptions, urgent.Preemptions, null);
        return report;
    }

    private sealed record Percentiles(double Median, double P90);

    private sealed record Outcome(Percentiles FirstMs, Percentiles LastMs, double BackgroundTokensPerSecond, double Preemptions);

    private Outcome Measure(bool priority)
    {
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", "bench", "--dtype", "bfloat16",
            "--max-sequences", Rows.ToString(System.Globalization.CultureInfo.InvariantCulture), "--max-context", "1024",
            "--scheduling-policy", priority ? "priority" : "fcfs", "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) };
            StreamedCompletion.Run(http, new { model = "bench", prompt = "warm up", max_tokens = 8, ignore_eos = true, stream = true });
            using var stop = new CancellationTokenSource();
            long generated = 0;
            // Threads of their own: the clients block on their streams, and the in-process server must keep the pool's threads.
            var clients = Enumerable.Range(0, background).Select(c => Task.Factory.StartNew(() =>
            {
                for (int job = 0; !stop.IsCancellationRequested; job++)
                {
                    var (_, _, events) = StreamedCompletion.Run(http, new
                    {
                        model = "bench", prompt = $"Background job {c}.{job}: summarise the archive", max_tokens = backgroundTokens,
                        ignore_eos = true, stream = true, priority = priority ? 10 : 0,
                    });
                    Interlocked.Add(ref generated, events);
                }
            }, TaskCreationOptions.LongRunning)).ToList();
            Thread.Sleep(3000);                                                   // the rows fill and a queue forms
            long tokensAtStart = Interlocked.Read(ref generated);
            var window = Stopwatch.StartNew();
            var first = new List<double>();
            var last = new List<double>();
            for (int i = 0; i < interactive; i++)
            {
                var (f, l, _) = StreamedCompletion.Run(http, new
                {
                    model = "bench", prompt = $"Interactive question {i}: what is the dose?", max_tokens = InteractiveTokens, temperature = 0,
                    ignore_eos = true, stream = true, priority = 0,
                });
                first.Add(f);
                last.Add(l);
                Console.Error.WriteLine($"priority bench ({(priority ? "priority" : "fcfs")}): interactive {i + 1}/{interactive}: first {f:F0} ms, last {l:F0} ms");
                Thread.Sleep(250);
            }

            double seconds = window.Elapsed.TotalSeconds;
            double backgroundRate = (Interlocked.Read(ref generated) - tokensAtStart) / seconds;
            stop.Cancel();
            Task.WaitAll([.. clients]);
            string metrics = http.GetStringAsync("/metrics").GetAwaiter().GetResult();
            double preemptions = double.Parse(System.Text.RegularExpressions.Regex.Match(metrics, @"(?m)^serving_preemptions (\S+)").Groups[1].Value,
                System.Globalization.CultureInfo.InvariantCulture);
            return new Outcome(new(Stats.Median(first), Stats.Percentile(first, 0.9)), new(Stats.Median(last), Stats.Percentile(last, 0.9)), backgroundRate, preemptions);
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
