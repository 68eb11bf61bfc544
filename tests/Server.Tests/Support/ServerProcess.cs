using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Serving.Server.Tests.Support;

/// <summary>The real server (Kestrel on a free loopback port) started in-process, with an HttpClient pointed at it.</summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServerProcess(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public Uri Address { get; }
    public HttpClient Http { get; }
    public IServiceProvider Services => _app.Services;

    public static Task<ServerProcess> StartAsync(params string[] args) => StartAsync(null, args);

    /// <summary>
    /// Starts the server and returns once the demo adapters it trains after start-up (when it serves the demo model with
    /// them) are ready, so tests see all of them and no training competes with them for the cores. A demo server's new
    /// <c>--cache-dir</c> is first filled from <see cref="DemoCache"/>, so it has nothing to train.
    /// </summary>
    /// <param name="configure">Changes to the host builder before it is built, e.g. a capturing log provider.</param>
    /// <param name="args">Server command-line arguments.</param>
    public static async Task<ServerProcess> StartAsync(Action<WebApplicationBuilder>? configure, params string[] args)
    {
        if (DemoCache.NewDemoCacheOf(args) is { } cache)
            await DemoCache.CopyToAsync(cache);
        var server = await StartListeningAsync(configure, args);
        await server.Services.GetRequiredService<Serving.Runtime.Hosting.ModelHost>().AdaptersPrepared.WaitAsync(TimeSpan.FromMinutes(10));
        return server;
    }

    /// <summary>Starts the server and returns as soon as it listens (demo adapters may still be in training).</summary>
    public static async Task<ServerProcess> StartListeningAsync(Action<WebApplicationBuilder>? configure, params string[] args)
    {
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", .. args], configure);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ServerProcess(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
