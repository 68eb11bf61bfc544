using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// DoRA scales kept in the server's cache across restarts: a second server on the same cache reads them back instead of
/// taking the norms and answers with the same tokens; a cache file that is damaged, or holds scales that cannot be
/// right, is ignored (the norms are taken again, the answer is the same, and the file is replaced); the same model
/// served in another dtype keeps scales of its own; a DoRA adapter registered at run time has its norms taken then.
/// </summary>
public sealed class DoraScaleFilesTests : IAsyncLifetime
{
    private const string Prompt = "kept scales";
    private readonly string _root = TestDirectories.Path("dora-scale-files");
    private string _model = "", _adapters = "", _cache = "";

    public Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        _adapters = Path.Combine(_root, "adapters");
        _cache = Path.Combine(_root, "cache");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 33 });
        SyntheticAdapterWriter.Write(Path.Combine(_adapters, "dora-a"), _model, 8, 16, SyntheticAdapterWriter.AllTargets, 5, dora: true);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        TestDirectories.Delete(_root);
        return Task.CompletedTask;
    }

    private Task<ServerProcess> Start(string dtype = "float32") =>
        ServerProcess.StartAsync("--model", _model, "--adapters", _adapters, "--dtype", dtype, "--max-sequences", "2", "--cache-dir", _cache);

    private static async Task<int[]> Greedy(ServerProcess server, string model = "dora-a")
    {
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions",
            new { model, prompt = Prompt, max_tokens = 10, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.True(status == 200, body.ToJsonString());
        return [.. body["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!)];
    }

    private static async Task<int> Preparations(ServerProcess server, string tier) =>
        AdapterLoadCounts.Of(await server.Http.GetStringAsync("/metrics"), tier);

    private string[] ScaleFiles() =>
        Directory.Exists(Path.Combine(_cache, "dora-scales")) ? Directory.GetFiles(Path.Combine(_cache, "dora-scales"), "*", SearchOption.AllDirectories) : [];

    [Fact]
    public async Task Completion_DoraAdapterAfterRestart_ScalesReadBackAndTokensUnchanged()
    {
        int[] first;
        await using (var server = await Start())
        {
            first = await Greedy(server);
            Assert.Equal(1, await Preparations(server, "dora_scales"));
        }

        string file = Assert.Single(ScaleFiles());
        Assert.Matches("^[0-9a-f]{32}\\.safetensors$", Path.GetFileName(file));
        await using (var server = await Start())
        {
            Assert.Equal(first, await Greedy(server));
            Assert.Equal(0, await Preparations(server, "dora_scales"));
            Assert.Equal(1, await Preparations(server, "dora_scales_file"));
        }

        await using (var server = await Start("bfloat16"))
        {
            await Greedy(server);
            Assert.Equal(1, await Preparations(server, "dora_scales"));
        }

        Assert.Equal(2, ScaleFiles().Length);
        Assert.Equal(2, Directory.GetDirectories(Path.Combine(_cache, "dora-scales")).Length);
    }

    [Fact]
    public async Task LoadLoraAdapter_DoraAdapter_NormsTakenAtRegistrationNotAtTheFirstFill()
    {
        string registered = Path.Combine(_root, "registered");
        SyntheticAdapterWriter.Write(registered, _model, 4, 8, ["q_proj", "down_proj"], 9, dora: true);
        await using var server = await Start();

        using var response = await server.Http.PostAsync("/v1/load_lora_adapter",
            System.Net.Http.Json.JsonContent.Create(new { lora_name = "reg-dora", lora_path = registered }));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.True(SpinWait.SpinUntil(() => ScaleFiles().Length == 1, 30_000), "no DoRA scales were kept after the registration");
        Assert.Equal(1, await Preparations(server, "dora_scales"));

        Assert.Equal(10, (await Greedy(server, "reg-dora")).Length);
        Assert.Equal(1, await Preparations(server, "dora_scales"));
        Assert.Equal(0, await Preparations(server, "dora_scales_file"));
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("not-finite")]
    [InlineData("too-short")]
    [InlineData("other-modules")]
    public async Task Completion_KeptScalesDamaged_NormsTakenAgainSameTokensFileReplaced(string damage)
    {
        int[] first;
        await using (var server = await Start())
            first = await Greedy(server);
        string file = Assert.Single(ScaleFiles());
        Damage(file, damage);

        await using (var server = await Start())
        {
            Assert.Equal(first, await Greedy(server));
            Assert.Equal(1, await Preparations(server, "dora_scales"));
            Assert.Equal(0, await Preparations(server, "dora_scales_file"));
        }

        await using (var server = await Start())
        {
            Assert.Equal(first, await Greedy(server));
            Assert.Equal(1, await Preparations(server, "dora_scales_file"));
        }
    }

    private static void Damage(string file, string damage)
    {
        var kept = SafetensorsFile.Parse(file, File.ReadAllBytes(file));
        float[] Floats(SafetensorsTensorInfo t)
        {
            var values = new float[t.ElementCount];
            kept.ReadInto(t, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            return values;
        }

        SafetensorsWriter.Entry Entry(string name, float[] values) =>
            SafetensorsWriter.Entry.Of(name, SafetensorsDtype.F32, [values.Length], System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

        var tensors = kept.Tensors.Values.OrderBy(t => t.DataOffset).ToList();
        switch (damage)
        {
            case "truncated":
                var bytes = File.ReadAllBytes(file);
                File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
                return;
            case "not-finite":
                SafetensorsWriter.Write(file, [.. tensors.Select((t, i) => Entry(t.Name, [.. Floats(t).Select((v, k) => i == tensors.Count - 1 && k == 1 ? float.PositiveInfinity : v)]))]);
                return;
            case "too-short":
                SafetensorsWriter.Write(file, [.. tensors.Select((t, i) => Entry(t.Name, i == 0 ? Floats(t)[1..] : Floats(t)))]);
                return;
            case "other-modules":
                SafetensorsWriter.Write(file, [.. tensors.Select(t => Entry(t.Name, Floats(t))), Entry("99.q_proj.scale", [1f])]);
                return;
        }

        throw new ArgumentOutOfRangeException(nameof(damage));
    }
}
