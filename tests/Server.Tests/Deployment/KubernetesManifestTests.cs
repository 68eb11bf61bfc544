using System.Diagnostics;
using System.Globalization;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using YamlDotNet.RepresentationModel;
using static Serving.Server.Tests.Deployment.KubernetesManifests;

namespace Serving.Server.Tests.Deployment;

/// <summary>
/// deploy/kubernetes checked offline against the real server: probe paths answer, ports and the image's user match,
/// every configured key binds to an option, and every metric the autoscaler and the endpoint picker read is one the
/// server's /metrics really serves.
/// </summary>
public sealed class KubernetesManifestTests : IAsyncLifetime
{
    private static readonly string Root = Path.Combine(RepositoryRoot.Path, "deploy", "kubernetes");
    private readonly string _dir = TestDirectories.Path("k8s");
    private ServerProcess _server = null!;
    private string _metrics = "";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_dir, "model");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 71 });
        SyntheticAdapterWriter.Write(Path.Combine(_dir, "adapters", "one"), model, 4, 8, ["q_proj"], 1);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", Path.Combine(_dir, "adapters"), "--dtype", "float32",
            "--adapter-registry", Path.Combine(_dir, "registry.json"));
        var (status, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model = "one", prompt = "hi", max_tokens = 2 });
        Assert.Equal(200, status);
        _metrics = await _server.Http.GetStringAsync("/metrics");
    }

    private static List<YamlMappingNode> Gateway => Load(Path.Combine(Root, "gateway"));

    private static YamlMappingNode Container(List<YamlMappingNode> objects) =>
        Items(objects.Single("Deployment", "serving"), "spec", "template", "spec", "containers").Single(c => Text(c, "name") == "serving");

    [Fact]
    public async Task Deployment_Probes_AnswerOnTheServersPort()
    {
        var container = Container(Gateway);
        var port = Items(container, "ports").Single(p => Text(p, "name") == "http");
        var dockerfile = DockerfileInstruction.Parse(Path.Combine(RepositoryRoot.Path, "Dockerfile"));
        Assert.Equal(dockerfile.Last(i => i.Keyword == "EXPOSE").Arguments, Text(port, "containerPort"));
        foreach (var probe in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
        {
            Assert.Equal(Text(port, "name"), Text(container, probe, "httpGet", "port"));
            string path = Text(container, probe, "httpGet", "path")!;
            using var response = await _server.Http.GetAsync(path);
            Assert.True(response.IsSuccessStatusCode, $"{probe} {path}: {(int)response.StatusCode}");
        }

        Assert.Equal("/healthz", Text(container, "livenessProbe", "httpGet", "path"));   // liveness must not depend on load
        Assert.Equal("/readyz", Text(container, "readinessProbe", "httpGet", "path"));
    }

    [Fact]
    public void Deployment_UserAndShutdown_MatchTheImage()
    {
        var objects = Gateway;
        var pod = At(objects.Single("Deployment", "serving"), "spec", "template", "spec")!;
        Assert.Equal("1654", Text(pod, "securityContext", "runAsUser"));   // the image's "app" user
        Assert.Equal("true", Text(pod, "securityContext", "runAsNonRoot"));
        var config = objects.Single("ConfigMap", "serving-config");
        double grace = double.Parse(Text(config, "data", "Serving__ShutdownGraceSeconds")!, CultureInfo.InvariantCulture);
        Assert.True(double.Parse(Text(pod, "terminationGracePeriodSeconds")!, CultureInfo.InvariantCulture) > grace,
            "the kubelet must wait longer than the server's own drain");
    }

    [Fact]
    public void ConfigMapAndSecret_Keys_BindToServerOptions()
    {
        var objects = Gateway;
        var keys = Labels(objects.Single("ConfigMap", "serving-config"), "data").Keys
            .Concat(Labels(objects.Single("Secret", "serving-adapter-store"), "stringData").Keys).ToList();
        Assert.NotEmpty(keys);
        foreach (var key in keys)
            Assert.True(ConfigurationKeys.Exists(key), $"{key} does not bind to any server option");
        var container = Container(objects);
        Assert.Equal(["serving-config", "serving-adapter-store"], Items(container, "envFrom").Select(e => Text(e, "configMapRef", "name") ?? Text(e, "secretRef", "name")));
        var cudaPatch = File.ReadAllText(Path.Combine(Root, "overlays", "cuda", "kustomization.yaml"));
        foreach (var key in new[] { "Serving__Model__Device", "Serving__Model__Dtype" })
        {
            Assert.Contains($"/data/{key}", cudaPatch, StringComparison.Ordinal);
            Assert.True(ConfigurationKeys.Exists(key));
        }
    }

    [Fact]
    public void SelectorsAndReferences_PointAtTheDeployment()
    {
        var objects = Gateway;
        var deployment = objects.Single("Deployment", "serving");
        var podLabels = Labels(deployment, "spec", "template", "metadata", "labels");
        bool Selects(Dictionary<string, string> selector) => selector.Count > 0 && selector.All(kv => podLabels.GetValueOrDefault(kv.Key) == kv.Value);
        Assert.True(Selects(Labels(objects.Single("Service", "serving"), "spec", "selector")));
        Assert.True(Selects(Labels(objects.Single("PodDisruptionBudget", "serving"), "spec", "selector", "matchLabels")));
        var pool = objects.Single("InferencePool", "serving");
        Assert.True(Selects(Labels(pool, "spec", "selector", "matchLabels")));
        Assert.Equal(Text(Items(Container(objects), "ports").Single(p => Text(p, "name") == "http"), "containerPort"), Text(pool, "spec", "targetPorts", "0", "number"));
        Assert.Equal("kubernetes.io/h2c", Text(pool, "spec", "appProtocol"));         // REST and gRPC share the port
        var epp = objects.Single("Service", Text(pool, "spec", "endpointPickerRef", "name"));
        Assert.Equal(Text(pool, "spec", "endpointPickerRef", "port", "number"), Text(epp, "spec", "ports", "0", "port"));
        var eppArgs = Sequence(At(objects.Single("Deployment", "serving-epp"), "spec", "template", "spec", "containers", "0")!, "args").ToList();
        Assert.Contains($"--pool-name={Text(pool, "metadata", "name")}", eppArgs);
        var hpa = objects.Single("HorizontalPodAutoscaler", "serving");
        Assert.Equal("serving", Text(hpa, "spec", "scaleTargetRef", "name"));
        Assert.Equal("InferencePool", Text(objects.Single("HTTPRoute", "serving"), "spec", "rules", "0", "backendRefs", "0", "kind"));
    }

    [Fact]
    public void MetricsReadByGatewayAndAutoscaler_AreServed()
    {
        var objects = Gateway;
        var eppArgs = Sequence(At(objects.Single("Deployment", "serving-epp"), "spec", "template", "spec", "containers", "0")!, "args")
            .Where(a => a.Contains("-metric=", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, eppArgs.Count);
        foreach (var arg in eppArgs)
            AssertServed(arg[(arg.IndexOf('=') + 1)..]);
        AssertServed("vllm:num_requests_waiting");
        var rules = Load(Path.Combine(Root, "monitoring")).Single("ConfigMap", "serving-prometheus-adapter-rules");
        string adapterConfig = Text(rules, "data", "config.yaml")!;
        Assert.Contains("seriesQuery: 'vllm:num_requests_waiting{", adapterConfig, StringComparison.Ordinal);
        string hpaMetric = Text(objects.Single("HorizontalPodAutoscaler", "serving"), "spec", "metrics", "0", "pods", "metric", "name")!;
        Assert.Contains($"as: \"{hpaMetric}\"", adapterConfig, StringComparison.Ordinal);
        var podMonitor = Load(Path.Combine(Root, "monitoring")).Single("PodMonitor", "serving");
        Assert.Equal("/metrics", Text(podMonitor, "spec", "podMetricsEndpoints", "0", "path"));
        // Scrapers read the metrics-only listener (the API port's /metrics needs a key): its port is the configured one.
        var metricsPort = Items(Container(objects), "ports").Single(p => Text(p, "name") == "metrics");
        string url = Text(objects.Single("ConfigMap", "serving-config"), "data", "Serving__Metrics__Url")!;
        Assert.Equal(new Uri(url.Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port.ToString(CultureInfo.InvariantCulture), Text(metricsPort, "containerPort"));
        Assert.Equal("metrics", Text(podMonitor, "spec", "podMetricsEndpoints", "0", "port"));
        Assert.Contains($"--model-server-metrics-port={Text(metricsPort, "containerPort")}",
            Sequence(At(objects.Single("Deployment", "serving-epp"), "spec", "template", "spec", "containers", "0")!, "args"));
        Assert.DoesNotContain(Items(objects.Single("Service", "serving"), "spec", "ports"), p => Text(p, "targetPort") == "metrics");
        var policy = objects.Single("NetworkPolicy", "serving");
        var metricsRule = Items(policy, "spec", "ingress").Single(r => Items(r, "ports").Any(p => Text(p, "port") == "metrics"));
        Assert.NotEmpty(Items(metricsRule, "from"));
        // The LoRA info series carries the labels the endpoint picker parses.
        var info = _metrics.Split('\n').Single(l => l.StartsWith("vllm:lora_requests_info{", StringComparison.Ordinal));
        foreach (var label in new[] { "running_lora_adapters=", "waiting_lora_adapters=", "max_lora=" })
            Assert.Contains(label, info, StringComparison.Ordinal);
    }

    private void AssertServed(string metric) =>
        Assert.True(_metrics.Split('\n').Any(l => l.StartsWith(metric + " ", StringComparison.Ordinal) || l.StartsWith(metric + "{", StringComparison.Ordinal)),
            $"the server's /metrics has no {metric}");

    [Fact]
    public async Task Kustomize_EveryEntryPoint_Renders()
    {
        // kubectl's built-in kustomize, where installed, renders every entry point offline (patches included).
        if (!File.Exists("/usr/bin/kubectl") && !File.Exists("/usr/local/bin/kubectl"))
        {
            foreach (var folder in new[] { "base", "gateway", "monitoring" })
                Assert.NotEmpty(Load(Path.Combine(Root, folder)));
            return;
        }

        foreach (var folder in new[] { "base", "gateway", "monitoring", "overlays/cuda" })
        {
            var start = new ProcessStartInfo("kubectl", ["kustomize", Path.Combine(Root, folder)]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            string output = await process.StandardOutput.ReadToEndAsync();
            string error = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, $"kubectl kustomize {folder}: {error}");
            if (folder == "overlays/cuda")
            {
                Assert.Contains("nvidia.com/gpu: \"1\"", output, StringComparison.Ordinal);
                Assert.Contains("Serving__Model__Device: cuda", output, StringComparison.Ordinal);
                Assert.Contains("image: ghcr.io/serving/serving:0.1.0-cuda", output, StringComparison.Ordinal);
            }
        }
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_dir);
    }
}
