using System.Diagnostics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// Prefix caching's two figures, through the real server on the bench preset in bfloat16, streamed over REST:
/// <list type="number">
/// <item>TTFT of a prompt whose long prefix is cached against the same prompt uncached, interleaved in one server: the
/// uncached request carries a fresh <c>cache_salt</c>, which can never hit, so it runs exactly as with caching off.</item>
/// <item>The timing side of tenant isolation: the same prompt sent by a tenant that never sent it (with tenant A's prefix
/// cached) must take as long as an uncached request — a second tenant cannot tell by TTFT what the first one sent.</item>
/// <item>What caching costs when nothing is shared: closed-loop throughput on random prompts with caching on and with
/// <c>--no-prefix-caching</c>, the two servers alternating rounds.</item>
/// </list>
/// </summary>
/// <param name="modelDir">The bench preset's folder.</param>
/// <param name="prefixTokens">Tokens of the shared prefix.</param>
/// <param name="requests">Timed requests per variant of the TTFT comparison.</param>
internal sealed class PrefixCacheBenchmark(string modelDir, int prefixTokens, int requests)
{
    private const int TailTokens = 16, Clients = 8, RandomPromptTokens = 256, Rounds = 3;
    private const string TenantAKey = "bench-tenant-a-key-0000000000";

    /// <summary>A key of its own for each probe of another tenant, so no probe can hit an earlier probe's blocks.</summary>
    private static string ProbeKey(int probe) => $"bench-probe-{probe + 2}-key-0000000000";

    public BenchReport Run()
    {
        var report = new BenchReport($"Prefix caching: bench preset (bfloat16), REST streaming, {prefixTokens}-token prefix", "cached", "uncached", "ratio");
        report.Context("model_dir", modelDir);
        report.Context("prefix_tokens", prefixTokens);
        report.Context("requests_per_variant", requests);
        var (on, onHttp) = Start(prefixCaching: true);
        try
        {
            int[] prefix = Tokens(prefixTokens, 1);
            var cached = new List<double>();
            var uncached = new List<double>();
            var otherTenant = new List<double>();
            for (int i = -2; i < requests; i++)
            {
                int[] prompt = [.. prefix, .. Tokens(TailTokens, 100 + i)];
                double hit = FirstTokenMs(onHttp, prompt, "shared", TenantAKey);
                double probe = FirstTokenMs(onHttp, prompt, "shared", ProbeKey(i));
                double miss = FirstTokenMs(onHttp, prompt, $"fresh-{i}", TenantAKey);
                if (i >= 0)
                {
                    cached.Add(hit);
                    otherTenant.Add(probe);
                    uncached.Add(miss);
                }
            }

            double c = Stats.Median(cached), u = Stats.Median(uncached), o = Stats.Median(otherTenant);
            report.Add("TTFT p50", "ms", c, u, c / u);
            report.Add("TTFT mean", "ms", cached.Average(), uncached.Average(), cached.Average() / uncached.Average());
            report.Add("isolation: TTFT p50 of another tenant sending the cached prompt (| uncached)", "ms", o, u, o / u);

            var (off, offHttp) = Start(prefixCaching: false);
            try
            {
                var rates = new List<(double On, double Off)>();
                for (int round = 0; round < Rounds; round++)
                    rates.Add((Throughput(onHttp, 7000 + round), Throughput(offHttp, 7000 + round)));
                double rOn = Stats.Median(rates.Select(r => r.On).ToList()), rOff = Stats.Median(rates.Select(r => r.Off).ToList());
                report.Add($"random {RandomPromptTokens}-token prompts, {Clients} clients: tokens/s (caching on | off)", "tok/s", rOn, rOff, rOn / rOff);
            }
            finally
            {
                offHttp.Dispose();
                off.StopAsync().GetAwaiter().GetResult();
            }
        }
        finally
        {
            onHttp.Dispose();
            on.StopAsync().GetAwaiter().GetResult();
        }

        return report;
    }

    private (Microsoft.AspNetCore.Builder.WebApplication App, HttpClient Http) Start(bool prefixCaching)
    {
        string[] args = ["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", "bench", "--dtype", "bfloat16", "--max-sequences", "16", "--max-context", "2048",
            "--Logging:LogLevel:Default", "Warning", .. TenantKeys()];
        var app = ServingApp.Build(prefixCaching ? args : [.. args, "--no-prefix-caching"]);
        app.StartAsync().GetAwaiter().GetResult();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", TenantAKey);
        return (app, http);
    }

    /// <summary>Tenant A's key and one key per probe (tenants probe-2, probe-3, ...), as <c>Serving:Auth:Keys</c> settings.</summary>
    private IEnumerable<string> TenantKeys()
    {
        var keys = new List<(string Key, string Tenant)> { (TenantAKey, "tenant-a") };
        for (int i = -2; i < requests; i++)
            keys.Add((ProbeKey(i), $"probe-{i + 2}"));
        return keys.SelectMany((k, n) => new[]
        {
            $"--Serving:Auth:Keys:{n}:Key={k.Key}", $"--Serving:Auth:Keys:{n}:Tenant={k.Tenant}", $"--Serving:Auth:Keys:{n}:Role=User",
        });
    }

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 10 + (int)(((ulong)seed * 2654435761UL + (ulong)i * 40503UL) % 30000))];

    /// <summary>Milliseconds from sending a streamed request to its first token event.</summary>
    private static double FirstTokenMs(HttpClient http, int[] prompt, string salt, string key)
    {
        var watch = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = "bench", prompt, max_tokens = 2, temperature = 0, ignore_eos = true, stream = true, cache_salt = salt }),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        using var response = http.Send(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(response.Content.ReadAsStream());
        double first = double.NaN;
        while (reader.ReadLine() is string line)
            if (double.IsNaN(first) && line.StartsWith("data: {", StringComparison.Ordinal))
                first = watch.Elapsed.TotalMilliseconds;
        return first;
    }

    /// <summary>Generated tokens per second of <see cref="Clients"/> closed-loop clients sending random prompts (nothing shared).</summary>
    private static double Throughput(HttpClient http, int seed)
    {
        const int perClient = 6, maxTokens = 32;
        var watch = Stopwatch.StartNew();
        Task.WaitAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < perClient; i++)
            {
                using var response = await http.PostAsJsonAsync("/v1/completions",
                    new { model = "bench", prompt = Tokens(RandomPromptTokens, seed * 1000 + c * 100 + i), max_tokens = maxTokens, temperature = 0, ignore_eos = true });
                response.EnsureSuccessStatusCode();
            }
        })).ToArray());
        return Clients * perClient * maxTokens / watch.Elapsed.TotalSeconds;
    }
}
