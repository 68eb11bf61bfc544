using System.Collections.Concurrent;
using System.Net.Http.Json;
using Microsoft.Extensions.Logging;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// 100 replacements of adapters that are in use during 10,000 greedy requests, alternating a LoRA version and a DoRA
/// version under each name (LoRA → DoRA → LoRA …, so a slot's DoRA scales must come and go with the version): no request
/// fails, and every answer equals, token for token, the answer of exactly one version (a request never sees a
/// half-swapped adapter).
/// </summary>
public sealed class HotSwapUnderLoadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Requests = 10_000, Replacements = 100, Names = 3, Prompts = 6, MaxTokens = 6;
    private readonly string _root = TestDirectories.Path("swap-load");
    private readonly CapturedLogs _logs = new();
    private string _v1 = "", _v2 = "";
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 41 });
        _v1 = Path.Combine(_root, "v1");
        _v2 = Path.Combine(_root, "v2");
        SyntheticAdapterWriter.Write(_v1, model, 8, 32, SyntheticAdapterWriter.AllTargets, 11);
        SyntheticAdapterWriter.Write(_v2, model, 8, 32, SyntheticAdapterWriter.AllTargets, 12, dora: true);
        _server = await ServerProcess.StartAsync(_logs.AddTo, "--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--max-sequences", "8", "--max-adapter-slots", "4");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task Load(string name, string path)
    {
        using var response = await _server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<int[]> Greedy(string model, int prompt)
    {
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model, prompt = $"swap prompt {prompt}", max_tokens = MaxTokens, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.True(status == 200, body.ToJsonString());
        return body["choices"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();
    }

    [Fact]
    public async Task Requests_AdaptersReplacedWhileInUse_NoFailuresAndEachAnswerIsOneVersion()
    {
        await Load("ref-v1", _v1);
        await Load("ref-v2", _v2);
        var expected = new int[2][][];
        for (int v = 0; v < 2; v++)
        {
            expected[v] = new int[Prompts][];
            for (int p = 0; p < Prompts; p++)
                expected[v][p] = await Greedy(v == 0 ? "ref-v1" : "ref-v2", p);
        }

        for (int p = 0; p < Prompts; p++)
            Assert.False(expected[0][p].SequenceEqual(expected[1][p]), $"prompt {p}: the two versions answer alike, so the test could not tell them apart");
        for (int n = 0; n < Names; n++)
            await Load($"hot-{n}", _v1);

        int completed = 0, swaps = 0;
        var seen = new int[2];
        var failures = new ConcurrentQueue<string>();
        using var done = new CancellationTokenSource();
        var swapper = Task.Run(async () =>
        {
            var version = new int[Names];
            while (swaps < Replacements && !done.IsCancellationRequested)
            {
                // Spread the replacements over the run, each while requests for that adapter are in flight.
                if (Volatile.Read(ref completed) < (swaps + 1) * (Requests / (Replacements + 1)))
                {
                    await Task.Delay(2);
                    continue;
                }

                int n = swaps % Names;
                version[n] ^= 1;
                await Load($"hot-{n}", version[n] == 0 ? _v1 : _v2);
                swaps++;
            }
        });

        await Parallel.ForEachAsync(Enumerable.Range(0, Requests), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            int prompt = i % Prompts;
            try
            {
                var tokens = await Greedy($"hot-{i % Names}", prompt);
                int v = tokens.SequenceEqual(expected[0][prompt]) ? 0 : tokens.SequenceEqual(expected[1][prompt]) ? 1 : -1;
                if (v < 0)
                    failures.Enqueue($"request {i} (hot-{i % Names}, prompt {prompt}): [{string.Join(",", tokens)}] matches neither version");
                else
                    Interlocked.Increment(ref seen[v]);
            }
            catch (Exception ex)
            {
                failures.Enqueue($"request {i}: {ex.Message}");
            }
            finally
            {
                Interlocked.Increment(ref completed);
            }
        });
        done.Cancel();
        await swapper;

        output.WriteLine($"{Requests} requests, {swaps} replacements: {seen[0]} answered by v1, {seen[1]} by v2, {failures.Count} failed or mixed");
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(10)));
        Assert.Equal(Replacements, swaps);
        Assert.True(seen[0] > Requests / 10 && seen[1] > Requests / 10, $"v1 {seen[0]}, v2 {seen[1]}");
        Assert.Empty(_logs.AtLeast(LogLevel.Warning));
    }
}
