#pragma warning disable OPENAI001                      // the official library marks its Responses client experimental
using System.ClientModel;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using OpenAI.Responses;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Security;

/// <summary>
/// A stored response is a tenant's conversation: only the tenant that made it may read, list, continue or delete it.
/// Another tenant who learns its id (a log line, a shared trace) gets exactly the answer an id that never existed gets,
/// and its attempts change nothing for the owner.
/// </summary>
public sealed class ResponseStoreIsolationTests : IAsyncLifetime
{
    private const string TenantA = "user-key-responses-a-0123456789", TenantB = "user-key-responses-b-0123456789", Admin = "admin-key-responses-0123456789";

    private readonly string _root = TestDirectories.Path("response-isolation");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 31 });
        _server = await ServerProcess.StartAsync(["--model", model, "--dtype", "float32", "--max-sequences", "4", "--max-context", "1024",
            .. ApiKeyArguments.For(Admin, (TenantA, "tenant-a", "/nowhere-a"), (TenantB, "tenant-b", "/nowhere-b"))]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private ResponsesClient Client(string key) => new(new ApiKeyCredential(key), new ResponsesClientOptions { Endpoint = new Uri(_server.Address, "/v1") });

    private async Task<(int Status, string Body)> Send(HttpMethod method, string path, string key)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await _server.Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task StoredResponse_OtherTenant_AnswersAsForAnIdThatNeverExisted()
    {
        var owned = (await Client(TenantA).CreateResponseAsync(new CreateResponseOptions("base", [ResponseItem.CreateUserMessageItem("A's secret question.")])
            { MaxOutputTokenCount = 4, Temperature = 0 })).Value;
        string never = "resp_" + Guid.NewGuid().ToString("N");

        foreach (var (method, suffix) in new[] { (HttpMethod.Get, ""), (HttpMethod.Get, "/input_items"), (HttpMethod.Delete, "") })
        {
            var theirs = await Send(method, $"/v1/responses/{owned.Id}{suffix}", TenantB);
            var missing = await Send(method, $"/v1/responses/{never}{suffix}", TenantB);
            Assert.Equal(404, theirs.Status);
            Assert.Equal(missing.Body.Replace(never, owned.Id, StringComparison.Ordinal), theirs.Body);
            Assert.DoesNotContain("secret", theirs.Body, StringComparison.Ordinal);
        }

        var continued = await HttpJson.PostWithKeyAsync(_server.Http, TenantB, "/v1/responses", new JsonObject { ["model"] = "base", ["input"] = "Go on.", ["previous_response_id"] = owned.Id });
        var continuedMissing = await HttpJson.PostWithKeyAsync(_server.Http, TenantB, "/v1/responses", new JsonObject { ["model"] = "base", ["input"] = "Go on.", ["previous_response_id"] = never });
        Assert.Equal(400, continued.Status);
        Assert.Equal(continuedMissing.Body.Replace(never, owned.Id, StringComparison.Ordinal), continued.Body);

        var read = (await Client(TenantA).GetResponseAsync(owned.Id)).Value;
        Assert.Equal(owned.GetOutputText(), read.GetOutputText());
        var items = new List<ResponseItem>();
        await foreach (var item in Client(TenantA).GetResponseInputItemsAsync(owned.Id))
            items.Add(item);
        Assert.Equal("A's secret question.", Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(items)).Content[0].Text);

        var metrics = await Send(HttpMethod.Get, "/metrics", Admin);
        Assert.Contains("serving_responses_stored{tenant=\"tenant-a\"} 1", metrics.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("serving_responses_stored{tenant=\"tenant-b\"}", metrics.Body, StringComparison.Ordinal);
        Assert.Matches("serving_responses_stored_bytes\\{tenant=\"tenant-a\"\\} [1-9]", metrics.Body);
    }
}
