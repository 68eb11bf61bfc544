using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Security;

/// <summary>
/// A compiled output constraint is shared only within a tenant and its <c>cache_salt</c>. Its automaton grows with what
/// is generated under it, up to a memory bound; shared across tenants, one tenant could exhaust it for everyone who sends
/// the same grammar or schema (<c>json_object</c> is everyone's), and time its warm cache to learn what others sent.
/// Here a tenant exhausts its own automaton of an ambiguous grammar; another tenant's identical grammar, and the same
/// tenant's under another salt, are untouched.
/// </summary>
public sealed class ConstraintIsolationTests : IAsyncLifetime
{
    private const string TenantA = "user-key-constraint-a-0123456789", TenantB = "user-key-constraint-b-0123456789", Admin = "admin-key-constraint-0123456789";

    /// <summary>After "x", call stacks multiply with every x (a ::= a{1000} is ambiguous); after "y", b nests one level a "(".</summary>
    private const string Grammar = "root ::= \"x\" a | \"y\" b\na ::= a{1000} | \"x\"\nb ::= \"(\" b \")\" | \"z\"";

    private readonly string _root = TestDirectories.Path("constraint-isolation");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 29 });
        _server = await ServerProcess.StartAsync(["--model", model, "--dtype", "float32", "--max-sequences", "4", "--max-context", "1024",
            .. ApiKeyArguments.For(Admin, (TenantA, "tenant-a", "/nowhere-a"), (TenantB, "tenant-b", "/nowhere-b"))]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<string> TokenId(string text)
    {
        var (status, body) = await HttpJson.PostWithKeyAsync(_server.Http, TenantA, "/tokenize", new JsonObject { ["model"] = "base", ["prompt"] = text, ["add_special_tokens"] = false });
        Assert.True(status == 200, body);
        return JsonNode.Parse(body)!["tokens"]!.AsArray().Single()!.ToString();
    }

    private async Task<(int Status, JsonNode Body)> Complete(string key, int maxTokens, JsonObject bias, string? salt = null)
    {
        var body = new JsonObject
        {
            ["model"] = "base", ["prompt"] = "Nest:", ["max_tokens"] = maxTokens, ["temperature"] = 0, ["logit_bias"] = bias,
            ["structured_outputs"] = new JsonObject { ["grammar"] = Grammar },
        };
        if (salt is not null)
            body["cache_salt"] = salt;
        var (status, text) = await HttpJson.PostWithKeyAsync(_server.Http, key, "/v1/completions", body);
        return (status, JsonNode.Parse(text)!);
    }

    [Fact]
    public async Task Completions_TenantExhaustsItsConstraint_OtherTenantsAndSaltsUntouched()
    {
        string x = await TokenId("x"), y = await TokenId("y"), open = await TokenId("(");
        JsonObject Nesting() => new() { [y] = 100, [open] = 50 };

        var exhausting = await Complete(TenantA, 900, new JsonObject { [x] = 100 });
        var sameTenantAfter = await Complete(TenantA, 20, Nesting());
        var otherTenant = await Complete(TenantB, 20, Nesting());
        var otherSalt = await Complete(TenantA, 20, Nesting(), salt: "fresh");

        Assert.Equal(400, exhausting.Status);
        Assert.Contains("call frames", (string?)exhausting.Body["error"]!["message"]);
        // The exhausted automaton is the tenant's own: its next request that needs new stacks meets the bound too...
        Assert.Equal(400, sameTenantAfter.Status);
        // ...while another tenant's, and another salt's, identical grammar nests as it should.
        foreach (var (status, body) in new[] { otherTenant, otherSalt })
        {
            Assert.True(status == 200, body.ToJsonString());
            Assert.Equal("y" + new string('(', 19), (string)body["choices"]![0]!["text"]!);
        }
    }
}
