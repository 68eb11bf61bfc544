using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Serving.Server.Tests.Support;

/// <summary>A real Prometheus server on loopback scraping one target every second; its HTTP query API answers the tests.</summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _folder;

    private PrometheusServer(Process process, string folder, Uri address)
    {
        _process = process;
        _folder = folder;
        Http = new HttpClient { BaseAddress = address };
    }

    public HttpClient Http { get; }

    public static async Task<PrometheusServer> StartAsync(Uri target)
    {
        string folder = TestDirectories.Path("prometheus");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "prometheus.yml"), $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: serving
                static_configs:
                  - targets: ["{target.Authority}"]
            """);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var psi = new ProcessStartInfo("prometheus",
            ["--config.file", Path.Combine(folder, "prometheus.yml"), "--storage.tsdb.path", Path.Combine(folder, "data"),
             "--web.listen-address", $"127.0.0.1:{port}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start prometheus (apt-get install prometheus)");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, folder, new Uri($"http://127.0.0.1:{port}"));
        for (int attempt = 0; attempt < 100; attempt++)
        {
            try
            {
                using var ready = await server.Http.GetAsync("/-/ready");
                if (ready.IsSuccessStatusCode)
                    return server;
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        await server.DisposeAsync();
        throw new InvalidOperationException("prometheus did not become ready within 10 s");
    }

    /// <summary>Polls an instant query until it returns at least one series (or the time is up); returns the result array.</summary>
    public async Task<JsonArray> QueryAsync(string promql, TimeSpan within)
    {
        var until = DateTime.UtcNow + within;
        while (true)
        {
            using var response = await Http.GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql));
            var result = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["data"]?["result"]?.AsArray() ?? [];
            if (result.Count > 0 || DateTime.UtcNow > until)
                return result;
            await Task.Delay(250);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        TestDirectories.Delete(_folder);
    }
}
