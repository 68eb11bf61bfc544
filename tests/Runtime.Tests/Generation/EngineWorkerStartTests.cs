using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serving.Authoring.Synthetic;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Tests.Shared;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Tests.Generation;

/// <summary>
/// The engine accepts requests as soon as its start returns. .NET 10 runs a <c>BackgroundService</c>'s whole
/// <c>ExecuteAsync</c> on the thread pool, after <c>StartAsync</c> has returned; set-up done there left a window (seconds,
/// on a 2-core machine whose pool was busy) in which a request got 503 "the engine is not running".
/// </summary>
public sealed class EngineWorkerStartTests
{
    [Fact]
    public async Task StartAsync_Returned_AcceptsAndRunsARequestAtOnce()
    {
        string root = TestDirectories.Create("engine-start");
        string model = Path.Combine(root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 29 });
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection([new("Serving:Model:Path", model), new("Serving:Model:Dtype", "float32")]);
        builder.Services.AddServingRuntime(builder.Configuration);
        using var app = builder.Build();
        var host = app.Services.GetRequiredService<ModelHost>();
        var worker = app.Services.GetRequiredService<EngineWorker>();
        try
        {
            await host.StartAsync(CancellationToken.None);
            await worker.StartAsync(CancellationToken.None);
            Assert.True(worker.IsRunning);

            var client = app.Services.GetRequiredService<GenerationClient>();
            var tokens = new List<int>();
            await foreach (var e in client.SubmitAsync(new GenerationRequest([5, 9, 13], new SamplingParams { Temperature = 0, MaxTokens = 4, IgnoreEos = true }, PinnedAdapters.None),
                               CancellationToken.None))
                tokens.Add(e.Token.Id);
            Assert.Equal(4, tokens.Count);
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
            await host.StopAsync(CancellationToken.None);
            TestDirectories.Delete(root);
        }
    }
}
