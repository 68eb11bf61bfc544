using Microsoft.Playwright;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Console;

/// <summary>
/// A real server with API keys (an admin, and a user of tenant <c>acme</c>) on a small generated model with two random
/// adapters, and Chromium from the Debian package driven by Playwright (its own browser download is not reachable; set
/// <c>SERVING_CHROMIUM</c> to use another executable).
/// </summary>
public sealed class ConsoleFixture : IAsyncLifetime
{
    public const string AdminKey = "console-admin-key-0123456789";
    public const string UserKey = "console-user-key-0123456789ab";

    private readonly string _root = TestDirectories.Path("console");
    private IPlaywright? _playwright;

    public ServerProcess Server { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public string ModelDir => Path.Combine(_root, "model");
    public string Root => _root;

    public async Task InitializeAsync()
    {
        SyntheticModelWriter.Write(ModelDir, new SyntheticModelSpec { Seed = 11 });
        string store = Path.Combine(_root, "store");
        SyntheticAdapterWriter.Write(Path.Combine(store, "alpha"), ModelDir, 8, 16, SyntheticAdapterWriter.AllTargets, 21);
        SyntheticAdapterWriter.Write(Path.Combine(store, "beta"), ModelDir, 8, 16, SyntheticAdapterWriter.AllTargets, 22);
        Server = await ServerProcess.StartAsync("--model", ModelDir, "--adapters", store, "--dtype", "float32", "--max-sequences", "8", "--max-context", "256",
            "--adapter-registry", Path.Combine(_root, "registry.json"), "--cache-dir", Path.Combine(_root, "cache"),
            "--Serving:Auth:Keys:0:Key", AdminKey, "--Serving:Auth:Keys:0:Role", "Admin",
            "--Serving:Auth:Keys:1:Key", UserKey, "--Serving:Auth:Keys:1:Tenant", "acme");
        string chromium = Environment.GetEnvironmentVariable("SERVING_CHROMIUM") ?? "/usr/bin/chromium";
        if (!File.Exists(chromium))
            throw new InvalidOperationException($"Chromium not found at {chromium}: install Debian's chromium package (.ci/run does) or set SERVING_CHROMIUM");
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox"] });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
            await Browser.DisposeAsync();
        _playwright?.Dispose();
        await Server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
