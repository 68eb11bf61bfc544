namespace Serving.Server.Tests.Support;

/// <summary>One server on the generated demo model (float32, so results are exact), shared by a test class.</summary>
public sealed class DemoServerFixture : IAsyncLifetime
{
    private readonly string _cache = TestDirectories.Path("server");

    public ServerProcess Server { get; private set; } = null!;
    public string CacheDirectory => _cache;
    public HttpClient Http => Server.Http;

    public async Task InitializeAsync() =>
        Server = await ServerProcess.StartAsync("--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "4", "--max-context", "256");

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }
}
