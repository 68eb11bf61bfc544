using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// What speculative decoding buys one stream: the bench preset (bf16) through the server at concurrency 1, greedy, streamed.
/// A server without n-gram drafts runs each prompt plainly, then with OpenAI's <c>prediction</c> set to its output, to its
/// output with one word in ten changed, and to unrelated text; a second server drafts every request by n-gram lookup, and a
/// third (<c>--speculation suffix</c>) runs each prompt after its tenant has sent it once (an agent repeating a step). Each
/// round runs the cases back to back (so machine noise falls on all of them), the medians are reported, and every drafted
/// output is checked equal to the plain one (the benchmark fails otherwise).
/// </summary>
internal sealed class SpeculationBenchmark(string modelDir, int rounds, int tokens)
{
    private static readonly string[] Prompts =
    [
        "Rewrite the following paragraph in plain words:", "Fix the bug in this function:", "Translate the note below:", "Summarise the report:",
    ];

    public BenchReport Run()
    {
        var report = new BenchReport($"Speculative decoding, one stream: bench preset (bf16), {tokens} greedy tokens, {rounds} rounds × {Prompts.Length} prompts, "
            + $"up to {new Serving.Runtime.Speculation.SpeculationOptions().Tokens} drafts a step", "without drafts", "with drafts", "with / without");
        report.Context("model_dir", modelDir);
        var (plainServer, plainHttp) = Start(ngram: false);
        var (ngramServer, ngramHttp) = Start(ngram: true);
        var (suffixServer, suffixHttp) = Start(ngram: true, suffix: true);
        try
        {
            var cases = new Dictionary<string, List<double>> { ["plain"] = [], ["exact"] = [], ["edited"] = [], ["unrelated"] = [], ["ngram"] = [], ["again"] = [] };
            var lastMs = new Dictionary<string, List<double>> { ["plain"] = [], ["exact"] = [] };
            var accepted = new Dictionary<string, List<double>> { ["exact"] = [], ["edited"] = [], ["unrelated"] = [] };
            var concurrent = new Dictionary<string, List<double>> { ["plain"] = [], ["exact"] = [] };
            var outputs = new Dictionary<string, string>();
            for (int round = 0; round < rounds; round++)
                foreach (string prompt in Prompts)
                {
                    var (text, ids) = Whole(plainHttp, prompt, null);
                    outputs[prompt] = text;
                    string edited = Edit(text);
                    string unrelated = string.Join(" ", Enumerable.Range(0, tokens).Select(i => $"w{i % 7}"));
                    Whole(suffixHttp, prompt, null);                 // the suffix server's tenant has now written this once
                    foreach (var (name, http, prediction) in new (string, HttpClient, string?)[]
                             { ("plain", plainHttp, null), ("exact", plainHttp, text), ("edited", plainHttp, edited), ("unrelated", plainHttp, unrelated), ("ngram", ngramHttp, null),
                               ("again", suffixHttp, null) })
                    {
                        var (first, last, _) = StreamedCompletion.Run(http, Body(prompt, prediction, stream: true));
                        cases[name].Add((tokens - 1) / ((last - first) / 1000));
                        if (lastMs.TryGetValue(name, out var l))
                            l.Add(last);
                        var (again, againIds, details) = WholeWithUsage(http, prompt, prediction);
                        if (!againIds.SequenceEqual(ids))
                            throw new InvalidOperationException($"{name}: the output with drafts differs from the plain one: '{again}' against '{text}'");
                        if (accepted.TryGetValue(name, out var a))
                            a.Add((double)(int)details!["accepted_prediction_tokens"]! / tokens);
                    }

                    Console.Error.WriteLine($"speculation bench: round {round + 1}/{rounds}, '{prompt}': plain {cases["plain"][^1]:F1}, exact {cases["exact"][^1]:F1}, "
                        + $"edited {cases["edited"][^1]:F1}, unrelated {cases["unrelated"][^1]:F1}, ngram {cases["ngram"][^1]:F1} tok/s");
                }

                // Every prompt at once: four streams, plain and each with its exact prediction (the drafts share the step's rows).
                foreach (string name in new[] { "plain", "exact" })
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    var streams = Prompts.Select(p => Task.Factory.StartNew(() => StreamedCompletion.Run(plainHttp, Body(p, name == "exact" ? outputs[p] : null, stream: true)),
                        TaskCreationOptions.LongRunning)).ToArray();
                    Task.WaitAll(streams);
                    concurrent[name].Add(streams.Sum(t => t.Result.Events) / clock.Elapsed.TotalSeconds);
                }

            double plain = Stats.Median(cases["plain"]);
            void Rate(string metric, string name)
            {
                double value = Stats.Median(cases[name]);
                report.Add(metric, "tok/s", plain, value, value / plain);
            }

            Rate("decode tokens/s, prediction = the output", "exact");
            Rate("decode tokens/s, prediction = the output, 1 word in 10 changed", "edited");
            Rate("decode tokens/s, prediction = unrelated text", "unrelated");
            Rate("decode tokens/s, n-gram drafts (server flag), no prediction", "ngram");
            Rate("decode tokens/s, suffix drafts: the tenant sent the same request before", "again");
            double together = Stats.Median(concurrent["plain"]), togetherExact = Stats.Median(concurrent["exact"]);
            report.Add($"{Prompts.Length} streams at once, prediction = each output: tokens/s of all", "tok/s", together, togetherExact, togetherExact / together);
            double lastPlain = Stats.Median(lastMs["plain"]), lastExact = Stats.Median(lastMs["exact"]);
            report.Add("time to last token, prediction = the output", "ms", lastPlain, lastExact, lastExact / lastPlain);
            foreach (var (name, label) in new[] { ("exact", "the output"), ("edited", "edited"), ("unrelated", "unrelated") })
                report.Add($"accepted prediction tokens / output tokens, prediction = {label}", "", null, Stats.Median(accepted[name]), null);
            string metrics = ngramHttp.GetStringAsync("/metrics").GetAwaiter().GetResult();
            double Total(string family) => System.Text.RegularExpressions.Regex.Matches(metrics, $@"(?m)^{family}(?:\{{[^}}]*\}})? (\S+)")
                .Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            report.Add("n-gram server: accepted / draft tokens", "", null, Total("vllm:spec_decode_num_accepted_tokens_total") / Total("vllm:spec_decode_num_draft_tokens_total"), null);
            report.Context("outputs_identical", true);
            return report;
        }
        finally
        {
            foreach (var app in new[] { plainServer, ngramServer, suffixServer })
            {
                app.StopAsync().GetAwaiter().GetResult();
                app.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
    }

    private (Microsoft.AspNetCore.Builder.WebApplication App, HttpClient Http) Start(bool ngram, bool suffix = false)
    {
        string[] args = ["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", "bench", "--dtype", "bfloat16", "--max-sequences", "4",
            "--max-context", "1024", "--Logging:LogLevel:Default", "Warning", .. ngram ? new[] { "--speculation", suffix ? "suffix" : "ngram", "--prompt-lookup-min", "2" } : []];
        var app = ServingApp.Build(args);
        app.StartAsync().GetAwaiter().GetResult();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) };
        StreamedCompletion.Run(http, new { model = "bench", prompt = "warm up", max_tokens = 8, ignore_eos = true, stream = true });
        return (app, http);
    }

    private object Body(string prompt, string? prediction, bool stream) => prediction is null
        ? new { model = "bench", prompt, max_tokens = tokens, temperature = 0, ignore_eos = true, stream, return_token_ids = true }
        : new { model = "bench", prompt, max_tokens = tokens, temperature = 0, ignore_eos = true, stream, return_token_ids = true, prediction = new { type = "content", content = prediction } };

    private (string Text, int[] Ids) Whole(HttpClient http, string prompt, string? prediction)
    {
        var (text, ids, _) = WholeWithUsage(http, prompt, prediction);
        return (text, ids);
    }

    private (string Text, int[] Ids, JsonNode? Details) WholeWithUsage(HttpClient http, string prompt, string? prediction)
    {
        using var response = http.PostAsJsonAsync("/v1/completions", Body(prompt, prediction, stream: false)).GetAwaiter().GetResult();
        response.EnsureSuccessStatusCode();
        var body = JsonNode.Parse(response.Content.ReadAsStringAsync().GetAwaiter().GetResult())!;
        var choice = body["choices"]![0]!;
        return ((string)choice["text"]!, [.. choice["token_ids"]!.AsArray().Select(t => (int)t!)], body["usage"]!["completion_tokens_details"]);
    }

    /// <summary>The text with every tenth word replaced, as an edit a client did not foresee.</summary>
    private static string Edit(string text)
    {
        var words = text.Split(' ');
        for (int i = 5; i < words.Length; i += 10)
            words[i] = "changed";
        return string.Join(' ', words);
    }
}
