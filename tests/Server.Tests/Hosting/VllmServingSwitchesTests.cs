using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Serving.Authoring.Synthetic;
using Serving.Server.Hosting;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

/// <summary>
/// vLLM's serving switches on a real server: HTTPS from <c>--ssl-certfile</c>/<c>--ssl-keyfile</c>, a proxy's path prefix
/// from <c>--root-path</c>, CORS from <c>--allowed-origins</c>; and its switches this server takes one way (accepted with
/// what it does, ignored ones warned about, other values refused naming why).
/// </summary>
public sealed class VllmServingSwitchesTests : IDisposable
{
    private readonly string _root = TestDirectories.Path("vllm-serving-switches");
    private readonly string _model;

    public VllmServingSwitchesTests()
    {
        _model = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 31 });
    }

    private string[] Serve(params string[] args) => ["--model", _model, "--cache-dir", Path.Combine(_root, "cache"), "--dtype", "float32", .. args];

    [Fact]
    public async Task Start_SslCertAndKeyFiles_ServesHttpsWithThatCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        string certFile = Path.Combine(_root, "cert.pem"), keyFile = Path.Combine(_root, "key.pem");
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        int port = FreePorts.Next();

        await using var app = ServingApp.Build(Serve("--port", $"{port}", "--ssl-certfile", certFile, "--ssl-keyfile", keyFile));
        await app.StartAsync();
        string? presented = null;
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, _) => (presented = cert?.Thumbprint) == certificate.Thumbprint,
        };
        using var https = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}") };
        Assert.Equal("ready", await https.GetStringAsync("/health"));
        Assert.Equal(certificate.Thumbprint, presented);
        await app.StopAsync();
    }

    [Fact]
    public async Task Start_RootPathAndAllowedOrigins_PrefixedPathsServedAndOnlyThatOriginAllowed()
    {
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(Serve("--port", $"{port}", "--root-path", "/serving", "--allowed-origins", """["https://console.example"]""",
            "--allowed-headers", """["Authorization", "Content-Type"]"""));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/serving/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/models")).StatusCode);

        async Task<HttpResponseMessage> Preflight(string origin)
        {
            var preflight = new HttpRequestMessage(HttpMethod.Options, "/serving/v1/chat/completions");
            preflight.Headers.Add("Origin", origin);
            preflight.Headers.Add("Access-Control-Request-Method", "POST");
            preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
            return await http.SendAsync(preflight);
        }

        var allowed = await Preflight("https://console.example");
        Assert.True(allowed.IsSuccessStatusCode, $"{allowed.StatusCode}");
        Assert.Equal("https://console.example", Assert.Single(allowed.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.False((await Preflight("https://elsewhere.example")).Headers.Contains("Access-Control-Allow-Origin"));
        var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "https://console.example");
        var answer = await http.SendAsync(get);
        Assert.Equal("https://console.example", Assert.Single(answer.Headers.GetValues("Access-Control-Allow-Origin")));
        await app.StopAsync();
    }

    [Fact]
    public async Task Start_NoAllowedOrigins_NoCorsHeaders()
    {
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(Serve("--port", $"{port}"));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "https://console.example");
        Assert.False((await http.SendAsync(get)).Headers.Contains("Access-Control-Allow-Origin"));
        await app.StopAsync();
    }

    /// <summary>
    /// vLLM's <c>--served-model-name NAME ALIAS…</c>: the first the model's id, each other listed by /v1/models and answering
    /// as the base model, and none an adapter may take.
    /// </summary>
    [Fact]
    public async Task Start_ServedModelNameWithAliases_EachNameServesTheBaseModel()
    {
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(Serve("--port", $"{port}", "--served-model-name", "team-model", "gpt-4o-mini"));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var models = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => (string)m!["id"]!).ToList();
        Assert.Equal(["team-model", "gpt-4o-mini"], models.Take(2));

        async Task<string> Complete(string model)
        {
            var (status, answer) = await HttpJson.PostAsync(http, "/v1/completions", new System.Text.Json.Nodes.JsonObject
            {
                ["model"] = model, ["prompt"] = "the river", ["max_tokens"] = 6, ["temperature"] = 0, ["return_token_ids"] = true,
            });
            Assert.True(status == 200, answer.ToJsonString());
            Assert.Equal(model, (string)answer["model"]!);
            return answer["choices"]![0]!["token_ids"]!.ToJsonString();
        }

        Assert.Equal(await Complete("team-model"), await Complete("gpt-4o-mini"));
        var (taken, error) = await HttpJson.PostAsync(http, "/v1/load_lora_adapter", new System.Text.Json.Nodes.JsonObject { ["lora_name"] = "GPT-4o-mini", ["lora_path"] = _root });
        Assert.Equal(400, taken);
        Assert.Contains("base model's id 'gpt-4o-mini'", (string)error["error"]!["message"]!);
        await app.StopAsync();
    }

    /// <summary>
    /// vLLM's <c>--max-logprobs</c>: the most alternatives a request may ask for per token, above or below the default 20;
    /// and <c>--return-tokens-as-token-ids</c>: tokens named <c>token_id:N</c> unless a request says otherwise.
    /// </summary>
    [Fact]
    public async Task Start_MaxLogprobsAndTokensAsIds_RequestsUpToItServedAboveIt400()
    {
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(Serve("--port", $"{port}", "--max-logprobs", "30", "--return-tokens-as-token-ids"));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var (status, answer) = await HttpJson.PostAsync(http, "/v1/completions", new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = "model", ["prompt"] = "the river", ["max_tokens"] = 2, ["logprobs"] = 25, ["prompt_logprobs"] = 30,
        });
        Assert.True(status == 200, answer.ToJsonString());
        Assert.All(answer["choices"]![0]!["logprobs"]!["top_logprobs"]!.AsArray(), top => Assert.Equal(25, top!.AsObject().Count));
        Assert.All(answer["choices"]![0]!["logprobs"]!["tokens"]!.AsArray(), token => Assert.StartsWith("token_id:", (string)token!));
        var (_, byText) = await HttpJson.PostAsync(http, "/v1/chat/completions", new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = "model", ["messages"] = System.Text.Json.Nodes.JsonNode.Parse("""[{"role": "user", "content": "hi"}]"""),
            ["logprobs"] = true, ["max_tokens"] = 2, ["return_tokens_as_token_ids"] = false,
        });
        Assert.All(byText["choices"]![0]!["logprobs"]!["content"]!.AsArray(), t => Assert.DoesNotContain("token_id:", (string)t!["token"]!));
        var (over, error) = await HttpJson.PostAsync(http, "/v1/chat/completions", new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = "model", ["messages"] = System.Text.Json.Nodes.JsonNode.Parse("""[{"role": "user", "content": "hi"}]"""),
            ["logprobs"] = true, ["top_logprobs"] = 31,
        });
        HttpJson.AssertBadRequest(over, error, "top_logprobs", "30");
        await app.StopAsync();
    }

    /// <summary>vLLM's <c>--hf-overrides</c> lays fields over config.json: the context the model's positions allow follows it.</summary>
    [Fact]
    public async Task Start_HfOverrides_LaidOverConfigJson()
    {
        int port = FreePorts.Next();
        await using (var app = ServingApp.Build(Serve("--port", $"{port}", "--hf-overrides", """{"max_position_embeddings": 96, "rope_scaling": null}""")))
        {
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var models = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
            Assert.Equal(96, (int)models.Single(m => (string)m!["id"]! == "model")!["max_model_len"]!);
            await app.StopAsync();
        }

        var notJson = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () =>
        {
            await using var app = ServingApp.Build(Serve("--hf-overrides", "max_position_embeddings=96"));
            await app.StartAsync();
        });
        Assert.Contains("--hf-overrides", notJson.Message);
        var unsupported = await Assert.ThrowsAsync<Serving.Engine.Checkpoints.ModelLoadException>(async () =>
        {
            await using var app = ServingApp.Build(Serve("--hf-overrides", """{"architectures": ["BertModel"]}"""));
            await app.StartAsync();
        });
        Assert.Contains("with --hf-overrides", unsupported.Message);
        Assert.Contains("BertModel", unsupported.Message);
    }

    /// <summary>
    /// vLLM's content formats: a template that loops over a message's content gets lists of parts (a string content one
    /// part, a tool's result a string); told <c>string</c>, the parts joined by newlines.
    /// </summary>
    [Theory]
    [InlineData("auto", "P:first;P:second;|S:done|P:hello;")]
    [InlineData("string", "S:first\nsecond|S:done|S:hello")]
    public async Task Start_ChatTemplateContentFormat_PartsOrStringsAsVllmPassesThem(string format, string expected)
    {
        const string template = "{% for m in messages %}{% if m['content'] is string %}S:{{ m['content'] }}{% else %}{% for p in m['content'] %}P:{{ p['text'] }};{% endfor %}{% endif %}"
            + "{% if not loop.last %}|{% endif %}{% endfor %}";
        int port = FreePorts.Next();
        await using var app = ServingApp.Build(Serve("--port", $"{port}", "--chat-template", template, "--chat-template-content-format", format));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var messages = System.Text.Json.Nodes.JsonNode.Parse("""
            [{"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
             {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "done"}]},
             {"role": "user", "content": "hello"}]
            """)!;
        var (status, rendered) = await HttpJson.PostAsync(http, "/tokenize", new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = "model", ["messages"] = messages, ["add_generation_prompt"] = false,
        });
        Assert.True(status == 200, rendered.ToJsonString());
        var (_, text) = await HttpJson.PostAsync(http, "/tokenize", new System.Text.Json.Nodes.JsonObject { ["model"] = "model", ["prompt"] = expected, ["add_special_tokens"] = false });
        Assert.Equal(text["tokens"]!.ToJsonString(), rendered["tokens"]!.ToJsonString());
        await app.StopAsync();
    }

    [Theory]
    [InlineData(new[] { "--load-format", "pt" }, "--load-format: 'pt' is not supported; this server takes auto or safetensors")]
    [InlineData(new[] { "--lora-dtype", "float16" }, "adapters compute in the model's dtype")]
    [InlineData(new[] { "--swap-space", "-4" }, "--swap-space: '-4' is not supported")]
    [InlineData(new[] { "--uvicorn-log-level", "loud" }, "a log level")]
    [InlineData(new[] { "--allowed-origins", "https://a.example" }, "--allowed-origins: must be a JSON list of strings")]
    [InlineData(new[] { "--allowed-methods", """["GET", 3]""" }, "--allowed-methods: must be a JSON list of strings")]
    [InlineData(new[] { "--served-model-name", "--dtype", "float32" }, "--served-model-name: needs one or more names")]
    public void ArgumentProblems_VllmServingSwitchWrong_NamedWithWhy(string[] args, string why) =>
        Assert.Contains(StartupArguments.ArgumentProblems(args), p => p.Contains(why, StringComparison.Ordinal));

    [Theory]
    [InlineData(new[] { "--root-path", "serving/" }, "--root-path")]
    [InlineData(new[] { "--allowed-origins", """["*"]""", "--allow-credentials" }, "cannot go with every origin")]
    [InlineData(new[] { "--allowed-origins", """["https://a.example/path"]""" }, "is not an origin")]
    public void Build_HostingSettingsWrong_RefusedNamingThem(string[] args, string why) =>
        Assert.Contains(why, Assert.Throws<StartupArgumentsException>(() => ServingApp.Build(Serve(args))).Message);

    [Fact]
    public void ArgumentProblems_VllmServingSwitches_KnownAndIgnoredOnesWarned()
    {
        string[] args = ["--enforce-eager", "--disable-log-stats", "--disable-uvicorn-access-log", "--enable-prompt-tokens-details", "--enable-request-id-headers",
            "--load-format", "safetensors", "--lora-dtype", "auto", "--tokenizer-mode", "auto", "--swap-space", "4", "--max-log-len", "100", "--uvicorn-log-level", "info",
            "--otlp-traces-endpoint", "http://127.0.0.1:4317", "--root-path", "/v", "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem",
            "--allowed-origins", """["*"]""", "--allowed-methods", """["*"]""", "--allowed-headers", """["*"]""", "--allow-credentials",
            "--hf-overrides", """{"rope_theta": 100000.0}""", "--return-tokens-as-token-ids", "--max-logprobs", "5"];
        Assert.Empty(StartupArguments.ArgumentProblems(args));
        var notes = VllmArguments.IgnoredNotes(args).ToList();
        Assert.Equal(3, notes.Count);
        Assert.Contains(notes, n => n.StartsWith("--swap-space 4", StringComparison.Ordinal) && n.Contains("recomputed", StringComparison.Ordinal));
        Assert.Contains("https://127.0.0.1:8000", VllmArguments.Expand(["--ssl-certfile", "c.pem"]));
        Assert.Contains("http://0.0.0.0:9000", VllmArguments.Expand(["--host", "0.0.0.0", "--port", "9000"]));
        Assert.DoesNotContain("https://127.0.0.1:8000", VllmArguments.Expand(["--ssl-certfile", "c.pem", "--urls", "https://127.0.0.1:9443"]));
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
