using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Serving.V1;

namespace Serving.Server.Tests.Security;

/// <summary>
/// The tenant × adapter × operation matrix through the real server with API keys: tenants a and b (users, each allowed one
/// source folder) and an admin; a shared adapter from the store folder, one adapter owned by each tenant.
/// </summary>
public sealed class AuthorizationTests : IAsyncLifetime
{
    private const string Alice = "alice-key-0123456789", Bob = "bob-key-0123456789ab", Admin = "admin-key-0123456789";
    private const string Expired = "carol-key-expired-0123", Rotating = "dave-key-expires-later-01", S3Tenant = "erin-key-s3-tenant-0123";
    private readonly string _root = TestDirectories.Path("auth");
    private ServerProcess _server = null!;
    private string _sourceA = "", _sourceB = "";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 31 });
        string store = Path.Combine(_root, "store");
        SyntheticAdapterWriter.Write(Path.Combine(store, "shared"), model, 4, 8, ["q_proj"], 1);
        _sourceA = Path.Combine(_root, "sources", "a");
        _sourceB = Path.Combine(_root, "sources", "b");
        SyntheticAdapterWriter.Write(Path.Combine(_sourceA, "one"), model, 4, 8, ["v_proj"], 2);
        SyntheticAdapterWriter.Write(Path.Combine(_sourceB, "one"), model, 4, 8, ["o_proj"], 3);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", store, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--Serving:Auth:Keys:0:Key", Alice, "--Serving:Auth:Keys:0:Tenant", "a", "--Serving:Auth:Keys:0:AllowedSources:0", _sourceA,
            "--Serving:Auth:Keys:1:Key", Bob, "--Serving:Auth:Keys:1:Tenant", "b", "--Serving:Auth:Keys:1:AllowedSources:0", _sourceB,
            "--Serving:Auth:Keys:2:Key", Admin, "--Serving:Auth:Keys:2:Role", "Admin",
            "--Serving:Auth:Keys:3:Key", Expired, "--Serving:Auth:Keys:3:Tenant", "c", "--Serving:Auth:Keys:3:ExpiresAt", "2020-01-01T00:00:00Z",
            "--Serving:Auth:Keys:4:Key", Rotating, "--Serving:Auth:Keys:4:Tenant", "d", "--Serving:Auth:Keys:4:ExpiresAt", "2999-01-01T00:00:00Z",
            "--Serving:Auth:Keys:5:Key", S3Tenant, "--Serving:Auth:Keys:5:Tenant", "e", "--Serving:Auth:Keys:5:AllowedSources:0", "s3://shared-bucket/tenants/e/");
        Assert.Equal(200, await Load(Alice, "a-own", Path.Combine(_sourceA, "one")));
        Assert.Equal(200, await Load(Bob, "b-own", Path.Combine(_sourceB, "one")));
    }

    private async Task<int> Send(string? key, HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (key is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await _server.Http.SendAsync(request);
        return (int)response.StatusCode;
    }

    private Task<int> Load(string key, string name, string path) => Send(key, HttpMethod.Post, "/v1/load_lora_adapter", new { lora_name = name, lora_path = path });

    private Task<int> Complete(string? key, string model) => Send(key, HttpMethod.Post, "/v1/completions", new { model, prompt = "auth", max_tokens = 2 });

    public static TheoryData<string, string, int> UseMatrix => new()
    {
        { "alice", "shared", 200 }, { "alice", "a-own", 200 }, { "alice", "b-own", 403 },
        { "bob", "shared", 200 }, { "bob", "a-own", 403 }, { "bob", "b-own", 200 },
        { "admin", "a-own", 200 }, { "admin", "b-own", 200 },
        { "none", "shared", 401 }, { "garbled", "shared", 401 }, { "wrong", "shared", 401 },
    };

    [Theory]
    [MemberData(nameof(UseMatrix))]
    public async Task Completion_CallerByAdapter_AllowedOrRefused(string caller, string adapter, int expected) =>
        Assert.Equal(expected, caller switch
        {
            "none" => await Complete(null, adapter),
            "garbled" => await Garbled(adapter),
            "wrong" => await Complete("not-a-key-but-long-enough", adapter),
            _ => await Complete(Key(caller), adapter),
        });

    private async Task<int> Garbled(string adapter)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { model = adapter, prompt = "x" }) };
        request.Headers.TryAddWithoutValidation("Authorization", "Basic Zm9vOmJhcg==");
        using var response = await _server.Http.SendAsync(request);
        return (int)response.StatusCode;
    }

    private static string Key(string caller) => caller switch { "alice" => Alice, "bob" => Bob, _ => Admin };

    [Fact]
    public async Task Completion_ExpiredKey_401NamingTheExpiry_KeyBeforeItsExpiryWorks()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { model = "shared", prompt = "x", max_tokens = 1 }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Expired);
        using var response = await _server.Http.SendAsync(request);
        Assert.Equal(401, (int)response.StatusCode);
        Assert.Contains("expired at 2020-01-01", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(200, await Complete(Rotating, "shared"));

        using var channel = GrpcChannel.ForAddress(_server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new V1.Generation.GenerationClient(channel)
            .GenerateAsync(new GenerateRequest { Model = "shared", Prompt = "x", MaxTokens = 1 }, new Metadata { { "Authorization", "Bearer " + Expired } }));
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Contains("expired", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Bearer ")]
    [InlineData("Bearer\talice-key-0123456789")]
    [InlineData("bearer alice-key-0123456789x")]
    [InlineData("Bearer alice-key-012345678")]
    [InlineData("Token alice-key-0123456789")]
    [InlineData("Bearer ΑΛΙΚΗ-κλειδί-0123456789")]
    [InlineData("LONG")]
    public async Task Completion_GarbledAuthorization_401(string header)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { model = "shared", prompt = "x", max_tokens = 1 }) };
        request.Headers.TryAddWithoutValidation("Authorization", header == "LONG" ? "Bearer " + new string('k', 100_000) : header.Replace("\\t", "\t", StringComparison.Ordinal));
        // Raw UTF-8 bytes on the wire, as a hostile client would send them; HttpClient refuses non-ASCII by default.
        using var client = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => System.Text.Encoding.UTF8 }) { BaseAddress = _server.Address };
        using var response = await client.SendAsync(request);
        Assert.True((int)response.StatusCode is 400 or 401 or 431, $"{header}: {(int)response.StatusCode}");
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("%2e%2e%2fetc")]
    [InlineData("name\\with\\backslash")]
    [InlineData("nul\u0000byte")]
    public async Task Register_TraversalInAdapterId_400(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/load_lora_adapter")
        {
            Content = JsonContent.Create(new { lora_name = name.Replace("\\u0000", "\0", StringComparison.Ordinal), lora_path = Path.Combine(_sourceA, "one") }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Admin);
        using var response = await _server.Http.SendAsync(request);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("lora_name", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("alice", "shared,a-own", "b-own")]
    [InlineData("bob", "shared,b-own", "a-own")]
    [InlineData("admin", "shared,a-own,b-own", "")]
    public async Task Models_ListsOnlyWhatTheCallerMayUse(string caller, string visible, string hidden)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key(caller));
        using var response = await _server.Http.SendAsync(request);
        var ids = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["data"]!.AsArray().Select(m => (string)m!["id"]!).ToList();

        Assert.All(visible.Split(','), id => Assert.Contains(id, ids));
        Assert.All(hidden.Split(',', StringSplitOptions.RemoveEmptyEntries), id => Assert.DoesNotContain(id, ids));
    }

    [Theory]
    [InlineData("alice", "shared,a-own", "b-own")]
    [InlineData("bob", "shared,b-own", "a-own")]
    [InlineData("admin", "shared,a-own,b-own", "")]
    public async Task Status_ListsOnlyWhatTheCallerMayUse(string caller, string visible, string hidden)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/status");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key(caller));
        using var response = await _server.Http.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        var ids = JsonNode.Parse(body)!["adapters"]!.AsArray().Select(m => (string)m!["id"]!).ToList();

        Assert.All(visible.Split(','), id => Assert.Contains(id, ids));
        Assert.All(hidden.Split(',', StringSplitOptions.RemoveEmptyEntries), id => Assert.DoesNotContain(id, body, StringComparison.Ordinal));
        Assert.DoesNotContain(_sourceA, caller == "bob" ? body : "", StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_AndTheConsolePage_NoKeyGetsThePageButNotTheStatus()
    {
        using var status = await _server.Http.GetAsync("/v1/status");
        using var page = await _server.Http.GetAsync("/");

        Assert.Equal(401, (int)status.StatusCode);
        Assert.Equal(200, (int)page.StatusCode);
        Assert.Contains("content=\"required\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.StartsWith("default-src 'none'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("alice", "b-own", "other tenant's adapter")]
    [InlineData("alice", "shared", "shared adapter, users may not replace it")]
    [InlineData("bob", "a-own", "other tenant's adapter")]
    public async Task Register_ReplacingWhatTheCallerDoesNotOwn_Forbidden(string caller, string name, string why)
    {
        string source = caller == "alice" ? Path.Combine(_sourceA, "one") : Path.Combine(_sourceB, "one");
        Assert.True(await Load(Key(caller), name, source) == 403, why);
    }

    [Fact]
    public async Task Register_FromOutsideTheAllowedSources_ForbiddenIncludingTraversal()
    {
        Assert.Equal(403, await Load(Alice, "stolen", Path.Combine(_sourceB, "one")));
        Assert.Equal(403, await Load(Alice, "climb", _sourceA + "/../b/one"));
        Assert.Equal(403, await Load(Alice, "etc", "/etc"));
        Assert.Equal(403, await Load(Alice, "s3", "s3://bucket/a/../b"));
        Assert.Equal(200, await Load(Admin, "admin-any", Path.Combine(_sourceB, "one")));
    }

    [Theory]
    [InlineData("s3://shared-bucket/tenants/e/../f/model")]
    [InlineData("s3://shared-bucket/tenants/e/./../f/model")]
    [InlineData("s3://shared-bucket/tenants/e/..")]
    [InlineData("s3://shared-bucket/tenants/ef/model")]
    [InlineData("s3://other-bucket/tenants/e/model")]
    [InlineData("S3://shared-bucket/tenants/e/../f")]
    public async Task Register_TraversalInS3Key_Refused(string path)
    {
        int status = await Load(S3Tenant, "s3-escape", path);
        Assert.True(status is 400 or 403, $"{path}: {status}");
    }

    [Fact]
    public async Task Unload_OnlyOwnerOrAdmin()
    {
        Assert.Equal(200, await Load(Alice, "a-temp", Path.Combine(_sourceA, "one")));
        Assert.Equal(403, await Send(Bob, HttpMethod.Post, "/v1/unload_lora_adapter", new { lora_name = "a-temp" }));
        Assert.Equal(200, await Send(Alice, HttpMethod.Post, "/v1/unload_lora_adapter", new { lora_name = "a-temp" }));
        Assert.Equal(200, await Load(Admin, "shared-temp", Path.Combine(_sourceA, "one")));
        Assert.Equal(403, await Send(Alice, HttpMethod.Post, "/v1/unload_lora_adapter", new { lora_name = "shared-temp" }));
        Assert.Equal(200, await Send(Admin, HttpMethod.Post, "/v1/unload_lora_adapter", new { lora_name = "shared-temp" }));
    }

    [Fact]
    public async Task Grpc_SameRules()
    {
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var anonymous = new V1.Generation.GenerationClient(channel);
        var unauthenticated = await Assert.ThrowsAsync<RpcException>(async () =>
            await anonymous.GenerateAsync(new GenerateRequest { Model = "shared", Prompt = "x", MaxTokens = 1 }));
        Assert.Equal(StatusCode.Unauthenticated, unauthenticated.StatusCode);

        var bob = new Metadata { { "Authorization", "Bearer " + Bob } };
        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await new V1.Adapters.AdaptersClient(channel).GetAdapterAsync(new GetAdapterRequest { Id = "a-own" }, bob));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        var list = await new V1.Adapters.AdaptersClient(channel).ListAdaptersAsync(new ListAdaptersRequest(), bob);
        Assert.Equal(["b-own", "shared"], list.Adapters.Select(a => a.Id).Order());
        Assert.Equal("b", list.Adapters.Single(a => a.Id == "b-own").Tenant);
        var ok = await anonymous.GenerateAsync(new GenerateRequest { Model = "b-own", Prompt = "x", MaxTokens = 1 }, bob);
        Assert.Single(ok.TokenIds);
    }

    [Fact]
    public async Task Probes_AreOpen_MetricsNeedAnAdminKey()
    {
        using var ready = await _server.Http.GetAsync("/readyz");
        using var health = await _server.Http.GetAsync("/healthz");
        using var metrics = await _server.Http.GetAsync("/metrics");
        Assert.Equal(200, (int)ready.StatusCode);
        Assert.Equal(200, (int)health.StatusCode);
        foreach (string vllmProbe in new[] { "/health", "/ping", "/version" })
            Assert.Equal(200, (int)(await _server.Http.GetAsync(vllmProbe)).StatusCode);
        Assert.Equal(401, (int)(await _server.Http.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(401, (int)metrics.StatusCode);
        Assert.Equal(200, await Send(Admin, HttpMethod.Get, "/metrics"));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
