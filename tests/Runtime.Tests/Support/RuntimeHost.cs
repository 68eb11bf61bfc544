using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serving.Runtime.Hosting;
using Serving.Tests.Shared;

namespace Serving.Runtime.Tests.Support;

/// <summary>
/// The runtime alone, as the server hosts it (<see cref="RuntimeServices.AddServingRuntime"/>, the same options, the same
/// hosted services in the same order) but with no protocol in front: tests drive its generator directly.
/// </summary>
internal sealed class RuntimeHost : IAsyncDisposable
{
    private readonly IHost _host;

    private RuntimeHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public T Get<T>() where T : notnull => _host.Services.GetRequiredService<T>();

    /// <param name="logs">Captures what the runtime logs; null: nothing is captured.</param>
    /// <param name="settings">Configuration keys and values, e.g. <c>("Serving:Model:Path", dir)</c>.</param>
    public static async Task<RuntimeHost> StartAsync(CapturedLogs? logs, params (string Key, string Value)[] settings)
    {
        Serving.Engine.Runtime.NativeRuntimeDefaults.Apply();
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));
        builder.Services.AddServingRuntime(builder.Configuration);
        if (logs is not null)
            logs.AddTo(builder.Logging);
        var host = builder.Build();
        await host.StartAsync();
        return new RuntimeHost(host);
    }

    /// <summary>A synthetic float32 model (seed <paramref name="seed"/>) written to <c>root/base</c>, served with <paramref name="settings"/>.</summary>
    public static Task<RuntimeHost> StartSyntheticAsync(string root, ulong seed, CapturedLogs? logs, params (string Key, string Value)[] settings)
    {
        string model = Path.Combine(root, "base");
        Serving.Authoring.Synthetic.SyntheticModelWriter.Write(model, new Serving.Authoring.Synthetic.SyntheticModelSpec { Seed = seed });
        return StartAsync(logs, [("Serving:Model:Path", model), ("Serving:Model:Dtype", "float32"), .. settings]);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
