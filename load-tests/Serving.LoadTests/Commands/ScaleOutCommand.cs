using System.Globalization;
using System.Text;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.ScaleOut;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary><c>scaleout</c>: random vs LoRA-affinity routing over a simulated fleet on identical traffic (no server needed).</summary>
internal static class ScaleOutCommand
{
    public static int Execute(CommandOptions options)
    {
        var defaults = new ScaleOutOptions();
        var sim = new ScaleOutOptions
        {
            Replicas = options.Int("replicas") ?? defaults.Replicas,
            SlotsPerReplica = options.Int("slots") ?? defaults.SlotsPerReplica,
            MaxBatch = options.Int("max-batch") ?? defaults.MaxBatch,
            Adapters = options.Int("adapters") ?? defaults.Adapters,
            ZipfS = options.Double("zipf-s") ?? defaults.ZipfS,
            Requests = options.Int("requests") ?? defaults.Requests,
            RatePerSecond = options.Double("rate") ?? defaults.RatePerSecond,
            OutputTokens = options.Int("output-tokens") ?? defaults.OutputTokens,
            StepBaseMs = options.Double("step-base-ms") ?? defaults.StepBaseMs,
            StepPerSequenceMs = options.Double("step-per-sequence-ms") ?? defaults.StepPerSequenceMs,
            StepPerAdapterMs = options.Double("step-per-adapter-ms") ?? defaults.StepPerAdapterMs,
            AdapterLoadMs = options.Double("adapter-load-ms") ?? defaults.AdapterLoadMs,
            QueueWeight = options.Double("queue-weight") ?? defaults.QueueWeight,
            Seed = options.Int("seed") is { } seed ? (ulong)seed : defaults.Seed,
        };
        string? json = options.Get("json"), outDir = options.Get("out");
        options.RefuseUnknown();
        var errors = sim.Validate().ToArray();
        if (errors.Length > 0)
            throw new ScenarioException(string.Join("; ", errors));
        var random = ScaleOutSimulation.Run(sim, r => new RandomReplicaPicker(r));
        var affinity = ScaleOutSimulation.Run(sim, r => new LoraAffinityReplicaPicker(r, sim.QueueWeight));
        string report = Markdown(sim, random, affinity);
        Console.WriteLine(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, "report.md"), report);
        }

        if (json is not null)
            ReportFiles.WriteJson(json, new { options = sim, random, lora_affinity = affinity });
        return 0;
    }

    public static string Markdown(ScaleOutOptions o, ScaleOutResult random, ScaleOutResult affinity)
    {
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture,
            $"## Scale-out simulation: {o.Replicas} replicas × {o.SlotsPerReplica} slots, {o.Adapters} adapters Zipf({o.ZipfS}), {o.Requests} requests at {o.RatePerSecond}/s, {o.OutputTokens} tokens each\n\n");
        md.Append(CultureInfo.InvariantCulture, $"Gateway scoring: LoRA affinity (running 1.0, room 0.8, waiting 0.6) + {o.QueueWeight} × queue. Step model: {o.StepBaseMs} ms + {o.StepPerSequenceMs} ms/sequence + {o.StepPerAdapterMs} ms/distinct adapter, {o.AdapterLoadMs} ms per adapter load; batch ≤ {o.MaxBatch}.\n\n");
        md.Append("| metric | random | LoRA affinity | affinity / random |\n|---|---:|---:|---:|\n");
        void Row(string name, double r, double a, string format) =>
            md.Append(CultureInfo.InvariantCulture, $"| {name} | {r.ToString(format, CultureInfo.InvariantCulture)} | {a.ToString(format, CultureInfo.InvariantCulture)} | {a / r:F3}× |\n");
        Row("adapter loads", random.AdapterLoads, affinity.AdapterLoads, "F0");
        Row("adapter loads per 1000 requests", random.LoadsPerThousandRequests, affinity.LoadsPerThousandRequests, "F1");
        Row("throughput (tokens/s)", random.TokensPerSecond, affinity.TokensPerSecond, "F0");
        Row("TTFT p50 (ms)", random.TtftMs.P50, affinity.TtftMs.P50, "F1");
        Row("TTFT p99 (ms)", random.TtftMs.P99, affinity.TtftMs.P99, "F1");
        Row("end-to-end p50 (ms)", random.EndToEndMs.P50, affinity.EndToEndMs.P50, "F1");
        Row("end-to-end p99 (ms)", random.EndToEndMs.P99, affinity.EndToEndMs.P99, "F1");
        return md.ToString();
    }
}
