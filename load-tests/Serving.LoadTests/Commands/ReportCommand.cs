using System.Text.Json.Nodes;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>
/// <c>report --json FILE[,FILE…] --out DIR</c>: the PNG figures of recorded results, from the JSON that <c>sweep</c> and
/// <c>compare</c> write with <c>--json</c> (so the pictures in the docs are redrawn from committed numbers, never retyped).
/// A sweep gives throughput and TTFT against concurrency and throughput against distinct adapters; a comparison gives
/// both configurations' throughput and TTFT p99 against concurrency on one figure each.
/// </summary>
internal static class ReportCommand
{
    public static int Execute(CommandOptions options)
    {
        var files = options.Required("json").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string outDir = options.Get("out") ?? "load-test-report";
        options.RefuseUnknown();
        foreach (string file in files)
        {
            if (!File.Exists(file))
                throw new ScenarioException($"no such result file {file}");
            var root = JsonNode.Parse(File.ReadAllText(file)) ?? throw new ScenarioException($"{file}: empty");
            string stem = Path.GetFileNameWithoutExtension(file);
            var written = root["a"] is not null && root["b"] is not null ? Compare(root, stem, outDir)
                : root["by_concurrency"] is not null ? Sweep(root, stem, outDir)
                : throw new ScenarioException($"{file}: neither a sweep nor a compare result (written by sweep/compare --json)");
            foreach (string png in written)
                Console.WriteLine(png);
        }

        return 0;
    }

    private static double[] Numbers(JsonNode? array) => array is JsonArray a ? [.. a.Select(v => (double)v!)] : [];

    private static double[] Of(JsonArray runs, int count, Func<JsonNode, double> pick) => [.. runs.Take(count).Select(r => pick(r!))];

    private static double Tokens(JsonNode run) => (double)run["tokens_per_second"]!;

    private static double Ttft(JsonNode run, string percentile) => (double)run["ttft_ms"]![percentile]!;

    private static List<string> Sweep(JsonNode root, string stem, string outDir)
    {
        var written = new List<string>();
        double[] concurrency = Numbers(root["concurrency"]), adapters = Numbers(root["adapters"]);
        var byConcurrency = root["by_concurrency"]!.AsArray();
        var byAdapters = root["by_adapters"]?.AsArray() ?? [];
        if (concurrency.Length > 0)
        {
            written.Add(Path.Combine(outDir, $"{stem}-throughput-vs-concurrency.png"));
            PlotWriter.Throughput(written[^1], "Throughput vs concurrency", "concurrent clients (closed loop)",
                [("output tokens/s", concurrency, Of(byConcurrency, concurrency.Length, Tokens))], logX: false);
            written.Add(Path.Combine(outDir, $"{stem}-ttft-vs-concurrency.png"));
            PlotWriter.Lines(written[^1], "Time to first token vs concurrency", "concurrent clients (closed loop)", "TTFT (ms)",
                [("p50", concurrency, Of(byConcurrency, concurrency.Length, r => Ttft(r, "p50"))), ("p99", concurrency, Of(byConcurrency, concurrency.Length, r => Ttft(r, "p99")))],
                logX: false);
        }

        if (adapters.Length > 0)
        {
            written.Add(Path.Combine(outDir, $"{stem}-throughput-vs-adapters.png"));
            PlotWriter.Throughput(written[^1], "Throughput vs number of distinct adapters", "distinct adapters in the traffic (log scale)",
                [("output tokens/s", [.. adapters.Select(n => Math.Max(n, 1))], Of(byAdapters, adapters.Length, Tokens))], logX: true);
        }

        return written;
    }

    private static List<string> Compare(JsonNode root, string stem, string outDir)
    {
        double[] concurrency = Numbers(root["concurrency"]);
        if (concurrency.Length == 0)
            throw new ScenarioException("a comparison draws against concurrency: record it with --sweep-concurrency");
        var series = new[] { root["a"]!, root["b"]! }.Select(side => ((string)side["label"]!, side["runs"]!.AsArray())).ToList();
        var written = new List<string> { Path.Combine(outDir, $"{stem}-throughput.png"), Path.Combine(outDir, $"{stem}-ttft-p99.png") };
        PlotWriter.Throughput(written[0], "Throughput vs concurrency", "concurrent clients (closed loop)",
            [.. series.Select(s => (s.Item1, concurrency, Of(s.Item2, concurrency.Length, Tokens)))], logX: false);
        PlotWriter.Lines(written[1], "TTFT p99 vs concurrency", "concurrent clients (closed loop)", "TTFT p99 (ms)",
            [.. series.Select(s => (s.Item1, concurrency, Of(s.Item2, concurrency.Length, r => Ttft(r, "p99"))))], logX: false);
        return written;
    }
}
