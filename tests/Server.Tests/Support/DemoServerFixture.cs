namespace Serving.Server.Tests.Support;

/// <summary>
/// One server on the generated demo model (float32, so results are exact), shared by a test class. Each fixture has a
/// cache folder of its own, filled from the run's one <see cref="DemoCache"/>.
/// </summary>
public class DemoServerFixture : IAsyncLifetime
{
    private readonly string _cache = TestDirectories.Path("server");

    public ServerProcess Server { get; private set; } = null!;
    public string CacheDirectory => _cache;
    public HttpClient Http => Server.Http;

    /// <summary>Settings a derived fixture's server starts with besides the demo's.</summary>
    protected virtual string[] ExtraArguments => [];

    public async Task InitializeAsync() =>
        Server = await ServerProcess.StartAsync(["--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "4", "--max-context", "256", "--enable-embeddings", .. ExtraArguments]);

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }
}
