using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Serving.V1;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Generated hostile adapter paths (links out of and inside a tenant's folder, FIFOs, device links, sparse files, files
/// with foreign bytes, percent-encoded and plain climbs, control characters, <c>file://</c> forms) registered with user
/// and admin keys over REST and gRPC. Every answer is 2xx or 4xx within seconds; a user's registration that succeeds
/// always serves an adapter from its own folder; no answer holds a foreign byte; afterwards no thread holds a FIFO, the
/// server logged no error and still serves. <c>SERVING_PATH_FUZZ_ITERATIONS</c> sets the count (default 600).
/// </summary>
public sealed class AdapterPathFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string UserA = "fuzz-a-key-0123456789", UserC = "fuzz-c-key-0123456789", Admin = "fuzz-admin-key-0123456789";
    private const string Secret = "root:*:19700:0:99999 fuzz-secret-marker";
    private static readonly string[] Climbs = ["..", "%2e%2e", "%2E%2E%2F..", "..%2f..", ".", "", "%2e", "./..", "...."];
    private static readonly string[] Entries = ["own", "link-out", "link-in", "fifo", "zero", "sparse", "shadow", "missing", "secret-b", "b", "tenants"];
    private static readonly string[] Oddities = ["", "\0", "%00", "\u202e", "\u00fc", "\n", new string('x', 300), "%2f", "//", "\\"];
    private readonly string _root = TestDirectories.Path("path-fuzz");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;
    private string _a = "", _b = "", _c = "";
    private readonly HashSet<string> _ownVersions = [];

    public static int Iterations => int.TryParse(Environment.GetEnvironmentVariable("SERVING_PATH_FUZZ_ITERATIONS"), out int n) ? n : 600;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 23 });
        _a = Path.Combine(_root, "tenants", "a");
        _b = Path.Combine(_root, "tenants", "b");
        _c = Path.Combine(_root, "tenants", "c");
        SyntheticAdapterWriter.Write(Path.Combine(_b, "secret-b"), model, 4, 8, ["v_proj"], 9);
        Directory.CreateDirectory(Path.Combine(_root, "outside"));
        File.WriteAllText(Path.Combine(_root, "outside", "shadow"), Secret);
        foreach (string tenant in (string[])[_a, _c])
        {
            string own = Path.Combine(tenant, "own");
            SyntheticAdapterWriter.Write(own, model, 4, 8, ["q_proj"], tenant == _a ? 1UL : 3UL);
            Directory.CreateSymbolicLink(Path.Combine(tenant, "link-out"), Path.Combine(_b, "secret-b"));
            Directory.CreateSymbolicLink(Path.Combine(tenant, "link-in"), own);
            Special(tenant, "fifo", p => PosixTestFiles.MakeFifo(p));
            Special(tenant, "zero", p => File.CreateSymbolicLink(p, "/dev/zero"));
            Special(tenant, "sparse", p => PosixTestFiles.MakeSparse(p, 2L << 30));
            Special(tenant, "shadow", p => File.CreateSymbolicLink(p, Path.Combine(_root, "outside", "shadow")));
        }

        _server = await ServerProcess.StartAsync(_logs.AddTo, "--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--Serving:Auth:Keys:0:Key", UserA, "--Serving:Auth:Keys:0:Tenant", "a", "--Serving:Auth:Keys:0:AllowedSources:0", _a + "/",
            "--Serving:Auth:Keys:1:Key", UserC, "--Serving:Auth:Keys:1:Tenant", "c", "--Serving:Auth:Keys:1:AllowedSources:0", "file://" + _c + "/",
            "--Serving:Auth:Keys:2:Key", Admin, "--Serving:Auth:Keys:2:Role", "Admin");
        foreach (string tenant in (string[])[_a, _c])
            _ownVersions.Add(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
                [.. File.ReadAllBytes(Path.Combine(tenant, "own", "adapter_config.json")), .. File.ReadAllBytes(Path.Combine(tenant, "own", "adapter_model.safetensors"))]))[..16]);

        void Special(string tenant, string name, Action<string> weights)
        {
            string dir = Path.Combine(tenant, name);
            Directory.CreateDirectory(dir);
            File.Copy(Path.Combine(tenant, "own", "adapter_config.json"), Path.Combine(dir, "adapter_config.json"));
            weights(Path.Combine(dir, "adapter_model.safetensors"));
        }
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private string Generate(Random random, string key)
    {
        string tenant = key == UserC ? _c : _a;
        var parts = new List<string>();
        for (int n = random.Next(0, 4); n > 0; n--)
            parts.Add(Climbs[random.Next(Climbs.Length)]);
        parts.Add(Entries[random.Next(Entries.Length)]);
        if (random.Next(4) == 0)
            parts.Insert(random.Next(parts.Count + 1), Oddities[random.Next(Oddities.Length)]);
        string path = tenant + "/" + string.Join('/', parts);
        return random.Next(3) switch
        {
            0 => "file://" + path,
            1 when random.Next(2) == 0 => "file://localhost" + path,
            _ => path,
        };
    }

    [Fact]
    public async Task Register_GeneratedHostilePaths_NeverEscapeNeverLeakNeverHang()
    {
        int seed = FuzzSeed.ForRandom(2426);
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var cases = Enumerable.Range(0, Iterations).Select(i =>
        {
            string key = (i % 3) switch { 0 => UserA, 1 => UserC, _ => Admin };
            return (Index: i, Key: key, Path: Generate(random, key), Grpc: i % 2 == 0);
        }).ToList();
        var statuses = new ConcurrentDictionary<int, int>();
        var failures = new ConcurrentQueue<string>();
        var slowest = TimeSpan.Zero;
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var grpc = new V1.Adapters.AdaptersClient(channel);

        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (c, ct) =>
        {
            var clock = Stopwatch.StartNew();
            string name = $"fz-{c.Index}";
            try
            {
                var (status, body, version) = c.Grpc ? await ViaGrpc(grpc, c.Key, name, c.Path) : await ViaRest(c.Key, name, c.Path);
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                if (status is not (200 or 400 or 403 or 404 or 422))
                    failures.Enqueue($"{status} for {c.Path} ({c.Key}): {body}");
                if (status == 200 && c.Key != Admin && !_ownVersions.Contains(version!))
                    failures.Enqueue($"user registration escaped its folder: {c.Path} → version {version}");
                if (body.Contains("secret-marker", StringComparison.Ordinal) || body.Contains("root:", StringComparison.Ordinal))
                    failures.Enqueue($"foreign bytes in the answer to {c.Path}: {body}");
            }
            catch (Exception ex)
            {
                failures.Enqueue($"{ex.GetType().Name} {ex.Message} for {c.Path}");
            }

            lock (failures)
                slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
        });

        output.WriteLine($"{cases.Count} registrations, slowest {slowest.TotalMilliseconds:F0} ms; statuses: " +
            string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}")));
        Assert.True(failures.IsEmpty, $"{failures.Count} failures:\n{string.Join("\n", failures.Take(10))}");
        Assert.True(slowest < TimeSpan.FromSeconds(10), $"slowest answer {slowest.TotalSeconds:F1} s");
        Assert.True(statuses.ContainsKey(200) && statuses.ContainsKey(404), "the generator reached neither success nor refusal");
        Assert.False(PosixTestFiles.FifoHasReader(Path.Combine(_a, "fifo", "adapter_model.safetensors")), "a thread holds the FIFO");
        Assert.False(PosixTestFiles.FifoHasReader(Path.Combine(_c, "fifo", "adapter_model.safetensors")), "a thread holds the FIFO");
        Assert.Empty(_logs.AtLeast(LogLevel.Error));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { model = "base", prompt = "still here", max_tokens = 2 }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", UserA);
        using var response = await _server.Http.SendAsync(request);
        Assert.Equal(200, (int)response.StatusCode);
    }

    private async Task<(int Status, string Body, string? Version)> ViaRest(string key, string name, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/load_lora_adapter") { Content = JsonContent.Create(new { lora_name = name, lora_path = path }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await _server.Http.SendAsync(request, cts.Token);
        string body = await response.Content.ReadAsStringAsync(cts.Token);
        string? version = null;
        if (response.IsSuccessStatusCode)
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, $"/v1/serving/adapters/{name}");
            get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var info = await _server.Http.SendAsync(get, cts.Token);
            version = (string?)JsonNode.Parse(await info.Content.ReadAsStringAsync(cts.Token))!["version"];
        }

        return ((int)response.StatusCode, body, version);
    }

    private static async Task<(int Status, string Body, string? Version)> ViaGrpc(V1.Adapters.AdaptersClient client, string key, string name, string path)
    {
        try
        {
            var info = await client.LoadAdapterAsync(new LoadAdapterRequest { Id = name, Path = path }, new Metadata { { "Authorization", "Bearer " + key } },
                deadline: DateTime.UtcNow.AddSeconds(30));
            return (200, info.ToString(), info.Version);
        }
        catch (RpcException ex)
        {
            int status = ex.StatusCode switch
            {
                StatusCode.InvalidArgument => 400,
                StatusCode.PermissionDenied => 403,
                StatusCode.NotFound => 404,
                StatusCode.FailedPrecondition => 422,
                _ => 500 + (int)ex.StatusCode,
            };
            return (status, ex.Status.Detail, null);
        }
    }
}
