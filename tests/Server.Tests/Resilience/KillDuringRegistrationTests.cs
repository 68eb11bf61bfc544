using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// SIGKILL while registrations, replacements and unloads are in flight: the restarted server reads a consistent registry
/// (it starts, every adapter it lists serves), keeps every registration that was acknowledged before the kill and not
/// undone, and leaves no temporary file behind.
/// </summary>
public sealed class KillDuringRegistrationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Rounds = 3, Folders = 6;
    private readonly string _root = TestDirectories.Path("kill9");
    private string _model = "", _registry = "";

    public Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 71 });
        for (int i = 0; i < Folders; i++)
            SyntheticAdapterWriter.Write(Folder(i), _model, 4, 8, ["q_proj", "v_proj"], (ulong)(100 + i));
        _registry = Path.Combine(_root, "state", "registry.json");
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        TestDirectories.Delete(_root);
        return Task.CompletedTask;
    }

    private string Folder(int i) => Path.Combine(_root, "adapters", $"a{i}");

    private Task<ChildServer> Start() =>
        ChildServer.StartAsync("--model", _model, "--dtype", "float32", "--adapter-registry", _registry, "--max-adapter-slots", "2",
            "--cache-dir", Path.Combine(_root, "cache"), "--Logging:LogLevel:Default", "Warning");

    [Fact]
    public async Task Kill9_DuringRegistrations_RestartFindsConsistentRegistry()
    {
        int acknowledgedTotal = 0;
        for (int round = 0; round < Rounds; round++)
        {
            var server = await Start();
            await using (server)
            {
                // Acknowledged before the storm and never touched again: it must survive every kill.
                using (var durable = await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = $"durable-{round}", lora_path = Folder(round) }))
                    Assert.True(durable.IsSuccessStatusCode, await durable.Content.ReadAsStringAsync());
                using var stop = new CancellationTokenSource();
                var workers = Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
                {
                    var random = new Random(round * 100 + w);
                    while (!stop.IsCancellationRequested)
                    {
                        string id = $"r{random.Next(12)}";
                        int folder = random.Next(Folders);
                        bool unload = random.Next(5) == 0;
                        try
                        {
                            using var response = unload
                                ? await server.Http.PostAsJsonAsync("/v1/unload_lora_adapter", new { lora_name = id })
                                : await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = id, lora_path = Folder(folder) });
                            if (response.IsSuccessStatusCode)
                                Interlocked.Increment(ref acknowledgedTotal);
                        }
                        catch (HttpRequestException)
                        {
                            return;                                  // the server is gone
                        }
                        catch (TaskCanceledException)
                        {
                            return;
                        }
                    }
                })).ToArray();

                await Task.Delay(300 + round * 250);
                await server.KillAsync();
                await stop.CancelAsync();
                await Task.WhenAll(workers);
            }
        }

        await using var restarted = await Start();
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(_registry)!, "*.tmp-*"));
        var registry = JsonNode.Parse(await File.ReadAllTextAsync(_registry))!["adapters"]!.AsArray();
        var listed = JsonNode.Parse(await restarted.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray()
            .Select(m => (string)m!["id"]!).ToHashSet();
        for (int round = 0; round < Rounds; round++)
            Assert.Contains($"durable-{round}", listed);
        var folders = Enumerable.Range(0, Folders).Select(Folder).ToHashSet();
        foreach (var entry in registry)
        {
            Assert.Contains((string)entry!["source"]!, folders);
            string id = (string)entry!["id"]!;
            Assert.Contains(id, listed);
            using var response = await restarted.Http.PostAsJsonAsync("/v1/completions", new { model = id, prompt = "after the crash", max_tokens = 3 });
            Assert.True(response.IsSuccessStatusCode, $"{id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        output.WriteLine($"{Rounds} kills, {acknowledgedTotal} acknowledged changes, {registry.Count} adapters in the registry after restart");
        Assert.True(acknowledgedTotal > 20, $"only {acknowledgedTotal} changes were acknowledged before the kills");
        Assert.NotEmpty(registry);
    }
}
