using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Serving.V1;

namespace Serving.Server.Tests.Security;

/// <summary>
/// <c>Serving:Adapters:MaxPerTenant</c> through the real server: a tenant's user key registers up to the limit (names by
/// the thousand would otherwise slow every registration and listing), then gets 429 / RESOURCE_EXHAUSTED (API.md: over a tenant's quota) naming the
/// limit; replacing its own adapter, another tenant's registrations and an admin's are not held back, and unloading one
/// makes room.
/// </summary>
public sealed class TenantQuotaTests : IAsyncLifetime
{
    private const string Alice = "alice-quota-key-012345", Bob = "bob-quota-key-0123456", Admin = "admin-quota-key-01234";
    private readonly string _root = TestDirectories.Path("quota");
    private ServerProcess _server = null!;
    private string _sourceA = "", _sourceB = "";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 37 });
        _sourceA = Path.Combine(_root, "sources", "a");
        _sourceB = Path.Combine(_root, "sources", "b");
        SyntheticAdapterWriter.Write(Path.Combine(_sourceA, "one"), model, 4, 8, ["v_proj"], 2);
        SyntheticAdapterWriter.Write(Path.Combine(_sourceB, "one"), model, 4, 8, ["o_proj"], 3);
        _server = await ServerProcess.StartAsync(["--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--Serving:Adapters:MaxPerTenant", "2",
            .. ApiKeyArguments.For(Admin, (Alice, "a", _sourceA), (Bob, "b", _sourceB))]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<(int Status, JsonNode? Body)> Send(string key, string path, object body)
    {
        var (status, text) = await HttpJson.PostWithKeyAsync(_server.Http, key, path, body);
        return (status, text.Length > 0 && text[0] == '{' ? JsonNode.Parse(text) : null);
    }

    private Task<(int Status, JsonNode? Body)> Load(string key, string name, string source) =>
        Send(key, "/v1/load_lora_adapter", new { lora_name = name, lora_path = Path.Combine(source, "one") });

    [Fact]
    public async Task Register_PastTheTenantsLimit_429UntilOneIsUnloaded()
    {
        Assert.Equal(200, (await Load(Alice, "a-1", _sourceA)).Status);
        Assert.Equal(200, (await Load(Alice, "a-2", _sourceA)).Status);
        var (status, body) = await Load(Alice, "a-3", _sourceA);
        Assert.Equal(429, status);
        Assert.Equal("lora_name", (string?)body!["error"]!["param"]);
        Assert.Contains("MaxPerTenant", (string)body["error"]!["message"]!, StringComparison.Ordinal);

        using var channel = GrpcChannel.ForAddress(_server.Address);
        var adapters = new Adapters.AdaptersClient(channel);
        var headers = new Metadata { { "authorization", "Bearer " + Alice } };
        var rpc = await Assert.ThrowsAsync<RpcException>(() => adapters.LoadAdapterAsync(new LoadAdapterRequest { Id = "a-3", Path = Path.Combine(_sourceA, "one") }, headers).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, rpc.StatusCode);

        Assert.Equal(200, (await Load(Alice, "a-2", _sourceA)).Status);                // replacing its own: no new room needed
        Assert.Equal(200, (await Load(Bob, "b-1", _sourceB)).Status);                  // another tenant counts its own
        Assert.Equal(200, (await Load(Admin, "shared-1", _sourceA)).Status);           // an admin's registration is not a tenant's
        Assert.Equal(200, (await Send(Alice, "/v1/unload_lora_adapter", new { lora_name = "a-1" })).Status);
        Assert.Equal(200, (await Load(Alice, "a-3", _sourceA)).Status);
    }
}
