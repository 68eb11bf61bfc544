using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Observability;

/// <summary>
/// Who may read /metrics once keys are configured: Admin and Metrics keys on the API port, anyone on the metrics-only
/// listener (Serving:Metrics:Url), which serves nothing else; a Metrics key reads nothing but /metrics.
/// </summary>
public sealed class MetricsAccessTests : IAsyncLifetime
{
    private const string User = "metrics-user-key-0123", Scraper = "metrics-scraper-key-0123", Admin = "metrics-admin-key-0123";
    private readonly string _root = TestDirectories.Path("metrics-access");
    private ServerProcess _server = null!;
    private Uri _metricsAddress = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 5 });
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        _metricsAddress = new Uri($"http://127.0.0.1:{port}");
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--Serving:Metrics:Url", _metricsAddress.ToString().TrimEnd('/'),
            "--Serving:Auth:Keys:0:Key", User, "--Serving:Auth:Keys:0:Tenant", "secret-tenant",
            "--Serving:Auth:Keys:1:Key", Scraper, "--Serving:Auth:Keys:1:Role", "Metrics",
            "--Serving:Auth:Keys:2:Key", Admin, "--Serving:Auth:Keys:2:Role", "Admin");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = "base", prompt = "count me", max_tokens = 1 }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", User);
        using var response = await _server.Http.SendAsync(request);
        Assert.Equal(200, (int)response.StatusCode);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<(int Status, string Body)> Get(Uri address, string path, string? key)
    {
        using var http = new HttpClient { BaseAddress = address };
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ApiPort_AnonymousOrUser_Refused_AdminAndMetricsKeysRead()
    {
        var anonymous = await Get(_server.Address, "/metrics", null);
        var user = await Get(_server.Address, "/metrics", User);
        var scraper = await Get(_server.Address, "/metrics", Scraper);
        var admin = await Get(_server.Address, "/metrics", Admin);

        Assert.Equal(401, anonymous.Status);
        Assert.Equal(403, user.Status);
        Assert.DoesNotContain("secret-tenant", anonymous.Body + user.Body, StringComparison.Ordinal);
        Assert.Equal(200, scraper.Status);
        Assert.Equal(200, admin.Status);
        Assert.Contains("tenant=\"secret-tenant\"", admin.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MetricsListener_ServesOnlyMetrics_WithoutAKey()
    {
        var metrics = await Get(_metricsAddress, "/metrics", null);
        var models = await Get(_metricsAddress, "/v1/models", null);
        var modelsWithKey = await Get(_metricsAddress, "/v1/models", Admin);

        Assert.Equal(200, metrics.Status);
        Assert.Contains("vllm:lora_requests_info", metrics.Body, StringComparison.Ordinal);
        Assert.Equal(404, models.Status);
        Assert.Equal(404, modelsWithKey.Status);
    }

    [Fact]
    public async Task MetricsKey_AnyOtherCall_Forbidden()
    {
        var models = await Get(_server.Address, "/v1/models", Scraper);
        Assert.Equal(403, models.Status);
        Assert.Contains("only read /metrics", models.Body, StringComparison.Ordinal);
    }
}
