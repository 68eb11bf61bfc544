using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// <c>--speculation suffix</c> through a real server with two tenants: a request that writes what its tenant's earlier
/// request wrote is drafted from it — same output, most of it from drafts — while another tenant's identical request
/// drafts nothing from it (its speed cannot tell what the first tenant wrote).
/// </summary>
public sealed partial class SpeculativeHistoryTests : IAsyncLifetime
{
    private const string TenantA = "user-key-history-a-0123456789", TenantB = "user-key-history-b-0123456789", Admin = "admin-key-history-0123456789";
    private readonly string _root = TestDirectories.Path("speculative-history");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 43 });
        _server = await ServerProcess.StartAsync(["--model", model, "--dtype", "float32", "--max-sequences", "4", "--max-context", "512",
            "--cache-dir", Path.Combine(_root, "cache"), "--speculation", "suffix", "--num-speculative-tokens", "4",
            .. ApiKeyArguments.For(Admin, (TenantA, "tenant-a", "/nowhere-a"), (TenantB, "tenant-b", "/nowhere-b"))]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<(int[] Ids, double Accepted)> Complete(string key, string prompt, string? salt = null)
    {
        double before = await Accepted();
        var body = new JsonObject { ["model"] = "base", ["prompt"] = prompt, ["max_tokens"] = 48, ["temperature"] = 0, ["ignore_eos"] = true, ["return_token_ids"] = true };
        if (salt is not null)
            body["cache_salt"] = salt;
        var (status, text) = await HttpJson.PostWithKeyAsync(_server.Http, key, "/v1/completions", body);
        Assert.True(status == 200, text);
        var ids = JsonNode.Parse(text)!["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!).ToArray();
        return (ids, await Accepted() - before);
    }

    private async Task<double> Accepted()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Authorization = new("Bearer", Admin);
        using var response = await _server.Http.SendAsync(request);
        string metrics = await response.Content.ReadAsStringAsync();
        return Sample().Matches(metrics).Where(m => m.Groups["name"].Value == "vllm:spec_decode_num_accepted_tokens_total")
            .Sum(m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Completions_SameTaskAgain_DraftedFromTheTenantsOwnEarlierOutputOnly()
    {
        const string prompt = "Call the weather tool for Paris and report";
        var first = await Complete(TenantA, prompt);
        var otherTenant = await Complete(TenantB, prompt);
        var otherSalt = await Complete(TenantA, prompt, salt: "isolated");
        var again = await Complete(TenantA, prompt);

        Assert.Equal(first.Ids, again.Ids);
        Assert.Equal(first.Ids, otherTenant.Ids);
        Assert.Equal(first.Ids, otherSalt.Ids);
        // The tenant's second request is drafted from its first: nearly all of it (4 drafts a step).
        Assert.True(again.Accepted >= 30, $"again: {again.Accepted} accepted");
        // Another tenant, or the same tenant under another cache_salt, drafts only from its own sequence: what it accepted,
        // it would have accepted with no history at all (the first request's count).
        Assert.Equal(first.Accepted, otherTenant.Accepted);
        Assert.Equal(first.Accepted, otherSalt.Accepted);
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?<labels>[^}]*)\})? (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
