using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Serving.Authoring.Synthetic;
using Serving.Server;

namespace Serving.LoadTests.Tests.Support;

/// <summary>
/// A generated tiny model with six small adapters on disk, and the real server on a free loopback port serving them
/// (float32, 8 sequences, 4 device slots so six adapters make the slots turn over).
/// </summary>
public sealed class LoadTargetFixture : IAsyncLifetime
{
    private WebApplication _app = null!;

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "serving-tests", $"load-{Guid.NewGuid():N}");
    public string ModelDirectory => Path.Combine(Root, "model");
    public string AdapterDirectory => Path.Combine(Root, "adapters");
    public Uri Address { get; private set; } = null!;

    public static readonly string[] ServerArguments = ["--dtype", "float32", "--max-sequences", "8", "--max-context", "256", "--max-adapter-slots", "4"];

    public async Task InitializeAsync()
    {
        SyntheticModelWriter.Write(ModelDirectory, new SyntheticModelSpec { Seed = 41 });
        for (int i = 0; i < 6; i++)
            SyntheticAdapterWriter.Write(Path.Combine(AdapterDirectory, $"tenant-{i}"), ModelDirectory, 4, 8, ["q_proj", "v_proj"], (ulong)(50 + i));
        _app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", ModelDirectory, "--adapters", AdapterDirectory,
            "--adapter-registry", Path.Combine(Root, "registry.json"), "--Logging:LogLevel:Default", "Warning", .. ServerArguments]);
        await _app.StartAsync();
        Address = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
