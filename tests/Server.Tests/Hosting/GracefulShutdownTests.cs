using System.Net.Http.Json;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

/// <summary>Stopping the server (SIGTERM) lets a running stream finish before the engine stops.</summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task Stop_WhileAStreamRuns_StreamCompletesWithAllTokens()
    {
        string cache = TestDirectories.Path("shutdown");
        try
        {
            var server = await ServerProcess.StartAsync("--cache-dir", cache, "--dtype", "float32", "--max-context", "256");
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = JsonContent.Create(new { model = "demo-all-r8", prompt = "finish me", max_tokens = 120, ignore_eos = true, stream = true }),
            };
            using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            await reader.ReadLineAsync();                                // running

            var stopping = server.DisposeAsync().AsTask();               // what SIGTERM triggers
            int tokens = 1;
            string? last = null;
            while (await reader.ReadLineAsync() is string line)
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    last = line;
                    if (line.StartsWith("data: {", StringComparison.Ordinal))
                        tokens++;
                }

            await stopping;
            Assert.Equal("data: [DONE]", last);
            Assert.Equal(120, tokens);
        }
        finally
        {
            TestDirectories.Delete(cache);
        }
    }
}
