using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Serving.Authoring.Synthetic;
using Serving.Engine.Checkpoints;
using Serving.Server.Hosting;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

/// <summary>
/// A deployment's vLLM command line starts this server unchanged: vLLM's names for the context, batch, adapter slots and
/// served name, <c>--enable-lora</c> and <c>--enable-prefix-caching</c>, <c>--host</c>/<c>--port</c>, and
/// <c>--chat-template</c> (a file, or the template itself), <c>--lora-modules</c> — a real server on the port it was given.
/// </summary>
public sealed class VllmArgumentsTests : IDisposable
{
    private readonly string _root = TestDirectories.Path("vllm-arguments");
    private readonly string _model;

    public VllmArgumentsTests()
    {
        _model = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 31 });
    }

    [Fact]
    public async Task Start_VllmCommandLine_ServesAsItSays()
    {
        string template = Path.Combine(_root, "tool_chat_template.jinja");
        File.WriteAllText(template, "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}");
        string sql = Path.Combine(_root, "sql"), translate = Path.Combine(_root, "translate");
        SyntheticAdapterWriter.Write(sql, _model, 4, 8, ["q_proj", "v_proj"], 3);
        SyntheticAdapterWriter.Write(translate, _model, 4, 8, ["o_proj"], 4);
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(["--model", _model, "--served-model-name", "team-model", "--max-model-len", "192", "--max-num-seqs", "3",
            "--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--lora-modules", $"sql={sql}", $$"""{"name": "translate", "path": "{{translate}}", "base_model_name": "team-model"}""",
            "--enable-prefix-caching", "--host", "127.0.0.1", "--port", $"{port}", "--chat-template", template, "--cache-dir", Path.Combine(_root, "cache"), "--dtype", "float32"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        var models = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        var model = models.Single(m => (string)m!["id"]! == "team-model")!;
        Assert.Equal(192, (int)model["max_model_len"]!);
        var options = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Serving.Runtime.Hosting.ModelOptions>>().Value;
        var adapters = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Serving.AdapterStore.AdapterStoreOptions>>().Value;
        Assert.Equal((3, 2, 8), (options.MaxSequences, adapters.MaxDeviceSlots, adapters.MaxRank));
        var (status, rendered) = await HttpJson.PostAsync(http, "/tokenize", new JsonObject
        {
            ["model"] = "team-model", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }), ["return_token_strs"] = true,
        });
        Assert.True(status == 200, rendered.ToJsonString());
        var (_, expected) = await HttpJson.PostAsync(http, "/tokenize", new JsonObject { ["model"] = "team-model", ["prompt"] = "<<user>>Hi<<assistant>>" });
        Assert.Equal(expected["tokens"]!.ToJsonString(), rendered["tokens"]!.ToJsonString());
        Assert.Contains(models, m => (string)m!["id"]! == "sql");
        Assert.Contains(models, m => (string)m!["id"]! == "translate");
        var (completed, answer) = await HttpJson.PostAsync(http, "/v1/completions", new JsonObject { ["model"] = "sql", ["prompt"] = "SELECT", ["max_tokens"] = 2 });
        Assert.True(completed == 200, answer.ToJsonString());
        await app.StopAsync();
    }

    /// <summary>As vLLM's, the command line's adapters last for the process: a start without <c>--lora-modules</c> no longer serves them.</summary>
    [Fact]
    public async Task Start_LoraModulesThenWithout_ServedOnlyWhileNamed()
    {
        string adapter = Path.Combine(_root, "process-only");
        SyntheticAdapterWriter.Write(adapter, _model, 4, 8, ["q_proj"], 6);
        string[] common = ["--model", _model, "--cache-dir", Path.Combine(_root, "process-only-cache"), "--dtype", "float32",
            "--adapter-registry", Path.Combine(_root, "process-only-registry.json")];
        await using (var server = await ServerProcess.StartAsync([.. common, "--lora-modules", $"startup={adapter}"]))
        {
            var (status, _) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject { ["model"] = "startup", ["prompt"] = "Hi", ["max_tokens"] = 1 });
            Assert.Equal(200, status);
        }

        await using (var server = await ServerProcess.StartAsync(common))
        {
            var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject { ["model"] = "startup", ["prompt"] = "Hi", ["max_tokens"] = 1 });
            Assert.True(status == 404, answer.ToJsonString());
        }
    }

    /// <summary>A start-up adapter that cannot be read stops start-up naming it; a value that is not name=path is an argument problem.</summary>
    [Fact]
    public async Task Start_LoraModuleMissing_FailsNamingIt()
    {
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "modules"),
            "--lora-modules", $"gone={Path.Combine(_root, "no-such-adapter")}"));

        Assert.Contains("--lora-modules gone=", error.Message);
        Assert.Contains(StartupArguments.ArgumentProblems(["--lora-modules", "just-a-name"]), p => p.Contains("'just-a-name' is not name=path", StringComparison.Ordinal));
        Assert.Contains(StartupArguments.ArgumentProblems(["--lora-modules", "--dtype", "float32"]), p => p.Contains("needs one or more", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_ChatTemplateGivenInline_RenderedAndABadOneStopsStartUpNamingIt()
    {
        await using (var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "inline"), "--dtype", "float32",
            "--chat-template", "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"))
        {
            var (_, rendered) = await HttpJson.PostAsync(server.Http, "/tokenize", new JsonObject
            {
                ["model"] = "model", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            });
            var (_, expected) = await HttpJson.PostAsync(server.Http, "/tokenize", new JsonObject { ["model"] = "model", ["prompt"] = "[Hi]" });
            Assert.Equal(expected["tokens"]!.ToJsonString(), rendered["tokens"]!.ToJsonString());
        }

        var missing = await Assert.ThrowsAsync<ModelLoadException>(() => ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "missing"),
            "--chat-template", Path.Combine(_root, "no-such.jinja")));
        Assert.Contains("--chat-template", missing.Message);
        var broken = await Assert.ThrowsAsync<ModelLoadException>(() => ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "broken"),
            "--chat-template", "{% for m in messages %}"));
        Assert.Contains("--chat-template", broken.Message);
    }

    /// <summary>
    /// vLLM's <c>--tokenizer</c>: another folder's tokenizer.json and chat template are served (here one without merges, so
    /// every byte is a token, and its own chat_template.jinja); a folder without a tokenizer stops start-up naming the switch.
    /// </summary>
    [Fact]
    public async Task Start_TokenizerFolder_ServedInsteadOfTheModels()
    {
        string other = Path.Combine(_root, "other-tokenizer");
        Directory.CreateDirectory(other);
        var tokenizerJson = JsonNode.Parse(File.ReadAllText(Path.Combine(_model, "tokenizer.json")))!;
        tokenizerJson["model"]!["merges"] = new JsonArray();
        File.WriteAllText(Path.Combine(other, "tokenizer.json"), tokenizerJson.ToJsonString());
        File.Copy(Path.Combine(_model, "tokenizer_config.json"), Path.Combine(other, "tokenizer_config.json"));
        File.WriteAllText(Path.Combine(other, "chat_template.jinja"), "{% for m in messages %}<<{{ m['content'] }}>>{% endfor %}");
        const string text = "the river the sea";
        int[] expected = Serving.Engine.Tokenization.HfTokenizer.Load(other).Encode(text, addSpecialTokens: false);
        Assert.NotEqual(expected, Serving.Engine.Tokenization.HfTokenizer.Load(_model).Encode(text, addSpecialTokens: false));

        await using (var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "tokenizer"), "--dtype", "float32", "--tokenizer", other))
        {
            var (status, tokens) = await HttpJson.PostAsync(server.Http, "/tokenize", new JsonObject { ["model"] = "model", ["prompt"] = text, ["add_special_tokens"] = false });
            Assert.True(status == 200, tokens.ToJsonString());
            Assert.Equal(expected, tokens["tokens"]!.AsArray().Select(t => t!.GetValue<int>()));
            var (_, rendered) = await HttpJson.PostAsync(server.Http, "/tokenize", new JsonObject
            {
                ["model"] = "model", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            });
            var (_, template) = await HttpJson.PostAsync(server.Http, "/tokenize", new JsonObject { ["model"] = "model", ["prompt"] = "<<Hi>>" });
            Assert.Equal(template["tokens"]!.ToJsonString(), rendered["tokens"]!.ToJsonString());
        }

        var missing = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => ServerProcess.StartAsync("--model", _model,
            "--cache-dir", Path.Combine(_root, "no-tokenizer"), "--tokenizer", Path.Combine(_root, "none")));
        Assert.Contains("--tokenizer", missing.Message);
    }

    /// <summary>
    /// vLLM's <c>--seed</c>: requests without a seed take theirs from one generator in arrival order, so a fresh server given
    /// the same requests samples the same tokens; a request's own seed is its own.
    /// </summary>
    [Fact]
    public async Task Start_Seed_UnseededRequestsReproducibleAcrossRestarts()
    {
        async Task<string[]> Run(params string[] args)
        {
            await using var server = await ServerProcess.StartAsync(["--model", _model, "--cache-dir", Path.Combine(_root, "seed"), "--dtype", "float32", .. args]);
            var texts = new List<string>();
            foreach (var seed in new int?[] { null, null, 5 })
            {
                var body = new JsonObject { ["model"] = "model", ["prompt"] = "the river", ["max_tokens"] = 16, ["temperature"] = 1.0, ["ignore_eos"] = true, ["return_token_ids"] = true };
                if (seed is int s)
                    body["seed"] = s;
                var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/completions", body);
                Assert.True(status == 200, answer.ToJsonString());
                texts.Add(answer["choices"]![0]!["token_ids"]!.ToJsonString());
            }

            return [.. texts];
        }

        var first = await Run("--seed", "7");
        Assert.NotEqual(first[0], first[1]);          // each unseeded request takes the generator's next seed
        Assert.Equal(first, await Run("--seed", "7"));
        var other = await Run("--seed", "8");
        Assert.NotEqual(first[0], other[0]);
        Assert.Equal(first[2], other[2]);              // a request's own seed decides alone
    }

    /// <summary>
    /// vLLM's deployment switches: <c>--api-key</c> guards every endpoint as an admin's key, <c>--max-num-batched-tokens</c> and
    /// <c>--block-size</c> set the prefill budget and the KV block, and the single-device values and flags are accepted.
    /// </summary>
    [Fact]
    public async Task Start_VllmDeploymentSwitches_KeyGuardsAndSettingsApply()
    {
        const string key = "vllm-deployment-key-0123";
        string adapter = Path.Combine(_root, "runtime-adapter");
        SyntheticAdapterWriter.Write(adapter, _model, 4, 8, ["q_proj"], 5);
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(["--model", _model, "--api-key", key, "--max-num-batched-tokens", "64", "--block-size", "32",
            "--tensor-parallel-size", "1", "-pp", "1", "--gpu-memory-utilization", "0.9", "--kv-cache-dtype", "auto", "--enable-chunked-prefill",
            "--enable-auto-tool-choice", "--trust-remote-code", "--disable-log-requests", "--port", $"{port}", "--cache-dir", Path.Combine(_root, "deployment"),
            "--dtype", "float32"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/v1/models")).StatusCode);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/models")).StatusCode);
        var load = await http.PostAsync("/v1/load_lora_adapter", System.Net.Http.Json.JsonContent.Create(new { lora_name = "runtime", lora_path = adapter }));
        Assert.True(load.IsSuccessStatusCode, await load.Content.ReadAsStringAsync());   // an admin's key
        var batching = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Serving.Batching.BatchingOptions>>().Value;
        Assert.Equal((64, 32), (batching.MaxPrefillTokensPerStep, batching.KvBlockSize));
        var (completed, answer) = await HttpJson.PostAsync(http, "/v1/completions", new JsonObject { ["model"] = "runtime", ["prompt"] = "SELECT", ["max_tokens"] = 2 });
        Assert.True(completed == 200, answer.ToJsonString());
        Assert.Contains("block_size=\"32\"", await http.GetStringAsync("/metrics"));
        await app.StopAsync();
    }

    /// <summary>
    /// vLLM's <c>--generation-config</c> (auto: the checkpoint's generation_config.json; vllm: none; a folder: its file) and
    /// <c>--override-generation-config</c> decide requests' sampling defaults; the end-of-sequence tokens stay the checkpoint's.
    /// </summary>
    [Fact]
    public async Task Start_GenerationConfigSwitches_DefaultsFromWhereTheySay()
    {
        string model = Path.Combine(_root, "with-generation-config"), other = Path.Combine(_root, "other-generation-config");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 31 });
        var generation = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "generation_config.json")))!.AsObject();
        generation["temperature"] = 0.0;
        generation["top_p"] = 0.5;
        generation["top_k"] = 7;
        generation["repetition_penalty"] = 50.0;   // far above Qwen2.5's 1.05: every token seen before is all but ruled out, which changes this random model's greedy text
        generation["max_new_tokens"] = 20;
        File.WriteAllText(Path.Combine(model, "generation_config.json"), generation.ToJsonString());
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "generation_config.json"), """{"temperature": 0.25}""");

        string implicitTokens = "", explicitTokens = "";
        async Task<Serving.Contracts.Configuration.GenerationDefaults> Defaults(params string[] args)
        {
            await using var server = await ServerProcess.StartAsync(["--model", model, "--cache-dir", Path.Combine(_root, "generation"), "--dtype", "float32", .. args]);
            if (args.Length == 0)
            {
                // The defaults reach sampling: unset fields sample as the generation config says, not at temperature 1.
                async Task<string> Tokens(JsonObject extra)
                {
                    var body = new JsonObject { ["model"] = "with-generation-config", ["prompt"] = "the river the sea the river the lake the river the sea the river the lake the river", ["max_tokens"] = 32, ["seed"] = 5, ["return_token_ids"] = true };
                    foreach (var (key, value) in extra)
                        body[key] = value?.DeepClone();
                    var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/completions", body);
                    Assert.True(status == 200, answer.ToJsonString());
                    return answer["choices"]![0]!["token_ids"]!.ToJsonString();
                }

                // max_new_tokens cuts every request's budget, as vLLM's: 32 asked, 20 given; a chat without max_tokens likewise.
                var (chatStatus, chat) = await HttpJson.PostAsync(server.Http, "/v1/chat/completions", new JsonObject
                {
                    ["model"] = "with-generation-config", ["ignore_eos"] = true,
                    ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "the river" }),
                });
                Assert.True(chatStatus == 200, chat.ToJsonString());
                Assert.Equal((20, "length"), (chat["usage"]!["completion_tokens"]!.GetValue<int>(), chat["choices"]![0]!["finish_reason"]!.GetValue<string>()));
                implicitTokens = await Tokens(new JsonObject { ["ignore_eos"] = true });
                Assert.Equal(20, JsonNode.Parse(implicitTokens)!.AsArray().Count);
                implicitTokens = await Tokens([]);
                explicitTokens = await Tokens(new JsonObject { ["temperature"] = 0.0, ["top_p"] = 0.5, ["top_k"] = 7, ["repetition_penalty"] = 50.0 });
            }

            return server.Services.GetRequiredService<Serving.Runtime.Hosting.ModelHost>().Served.GenerationDefaults;
        }

        var auto = await Defaults();
        Assert.Equal((0.0, 0.5, 7, 50.0, 20), (auto.Temperature, auto.TopP, auto.TopK, auto.RepetitionPenalty, auto.MaxNewTokens));
        Assert.Equal(explicitTokens, implicitTokens);
        var vllm = await Defaults("--generation-config", "vllm", "--override-generation-config", """{"top_k": 3, "min_p": 0.1, "max_new_tokens": 64}""");
        Assert.Equal((null, null, 3, null, 0.1, 64), (vllm.Temperature, vllm.TopP, vllm.TopK, vllm.RepetitionPenalty, vllm.MinP, vllm.MaxNewTokens));
        Assert.Equal(auto.EosTokenIds, vllm.EosTokenIds);
        var folder = await Defaults("--generation-config", other);
        Assert.Equal((0.25, null, null), (folder.Temperature, folder.TopP, folder.TopK));
        Assert.Equal(auto.EosTokenIds, folder.EosTokenIds);

        var missing = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => Defaults("--generation-config", Path.Combine(_root, "none")));
        Assert.Contains("--generation-config", missing.Message);
        Assert.Contains(StartupArguments.ArgumentProblems(["--override-generation-config", """{"max_length": 64}"""]),
            p => p.Contains("'max_length' is not a default this server takes", StringComparison.Ordinal));
        Assert.Contains(StartupArguments.ArgumentProblems(["--override-generation-config", "[1]"]), p => p.Contains("must be a JSON object", StringComparison.Ordinal));
        Assert.Contains(StartupArguments.ArgumentProblems(["--override-generation-config", """{"top_k": 2.5}"""]), p => p.Contains("top_k must be an integer", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(new[] { "--tensor-parallel-size", "2" }, "'2' is not supported; this server takes 1: one device")]
    [InlineData(new[] { "-tp", "4" }, "-tp: '4' is not supported")]
    [InlineData(new[] { "--pipeline-parallel-size", "2" }, "one device serves the whole model")]
    [InlineData(new[] { "--kv-cache-dtype", "fp8" }, "'fp8' is not supported; this server takes auto")]
    [InlineData(new[] { "--gpu-memory-utilization", "1.5" }, "a fraction in (0, 1]")]
    [InlineData(new[] { "--api-key", "token-abc123" }, "a key of 12 characters can be guessed")]
    [InlineData(new[] { "--api-key", "--model", "m" }, "can be guessed")]
    public void ArgumentProblems_VllmValueNotThisServers_NamedWithWhatItTakes(string[] args, string why) =>
        Assert.Contains(StartupArguments.ArgumentProblems(args), p => p.Contains(why, StringComparison.Ordinal));

    [Fact]
    public void Expand_ApiKeyOrTheEnvironmentsKey_AdminKeys()
    {
        const string fromSwitch = "switch-key-0123456789", fromEnvironment = "environment-key-0123456789";
        string? Environment(string name) => name == VllmValueSwitches.ApiKeyVariable ? fromEnvironment : null;

        Assert.Equal(["--model", "m", "--Serving:Auth:AdminKeys:0", fromEnvironment], VllmArguments.Expand(["--model", "m"], Environment));
        Assert.Equal(["--Serving:Auth:AdminKeys:0", fromSwitch], VllmArguments.Expand(["--api-key", fromSwitch], Environment));
        Assert.Equal(["--model", "m"], VllmArguments.Expand(["--model", "m", "--gpu-memory-utilization", "0.9", "-tp", "1"], _ => null));
        Assert.Equal(["--gpu-memory-utilization 0.9 is vLLM's; this server takes a fraction in (0, 1], and ignores it: the KV cache's memory is --kv-cache-tokens (default: what --max-num-seqs sequences of --max-model-len hold at once)"],
            VllmArguments.IgnoredNotes(["--model", "m", "--gpu-memory-utilization", "0.9"]));
    }

    [Theory]
    [InlineData(new[] { "--port", "70000" }, "not a port number")]
    [InlineData(new[] { "--port", "80a" }, "not a port number")]
    [InlineData(new[] { "--host", "http://x/" }, "not a host name")]
    [InlineData(new[] { "--port", "8001", "--urls", "http://127.0.0.1:8002" }, "not both")]
    public void ArgumentProblems_VllmListenSwitchesWrong_NamedWithWhy(string[] args, string why) =>
        Assert.Contains(StartupArguments.ArgumentProblems(args), p => p.Contains(why, StringComparison.Ordinal));

    [Fact]
    public void ArgumentProblems_VllmSwitches_Known() =>
        Assert.Empty(StartupArguments.ArgumentProblems(["--enable-lora", "--host", "0.0.0.0", "--port=8000", "--max-model-len", "4096", "--max-num-seqs", "64",
            "--max-loras", "4", "--served-model-name", "m", "--enable-prefix-caching", "--chat-template", "t.jinja", "--lora-modules", "a=/x", "b=s3://b/p",
            "--max-num-batched-tokens", "8192", "--block-size", "16", "--tensor-parallel-size", "1", "--gpu-memory-utilization=0.85", "--kv-cache-dtype", "auto",
            "--enable-chunked-prefill", "--enable-auto-tool-choice", "--trust-remote-code", "--disable-log-requests", "--api-key", "a-long-enough-api-key",
            "--disable-hybrid-kv-cache-manager", "--seed", "0", "--tokenizer", "/tok"]));

    public void Dispose() => TestDirectories.Delete(_root);
}
