namespace Serving.Server.Tests.Support;

/// <summary>
/// One server on the generated demo model (float32, so results are exact), shared by a test class. Each fixture has a
/// cache folder of its own; the first one to finish start-up keeps a copy of its freshly generated model and trained demo
/// adapters, and later fixtures start from that copy, so the three demo adapters are trained once per test run rather
/// than once per class (about 38 s of both cores each time).
/// </summary>
public class DemoServerFixture : IAsyncLifetime
{
    private static readonly string Template = TestDirectories.Path("demo-cache-template");
    private static int _templateState;                    // 0: none, 1: being written, 2: complete

    private readonly string _cache = TestDirectories.Path("server");

    static DemoServerFixture() => AppDomain.CurrentDomain.ProcessExit += (_, _) => TestDirectories.Delete(Template);

    public ServerProcess Server { get; private set; } = null!;
    public string CacheDirectory => _cache;
    public HttpClient Http => Server.Http;

    /// <summary>Settings a derived fixture's server starts with besides the demo's.</summary>
    protected virtual string[] ExtraArguments => [];

    public async Task InitializeAsync()
    {
        if (Volatile.Read(ref _templateState) == 2)
            CopyTree(Template, _cache);
        Server = await ServerProcess.StartAsync(["--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "4", "--max-context", "256", "--enable-embeddings", .. ExtraArguments]);
        // Copied before any test of this class runs, so it is the cache exactly as start-up left it.
        if (Interlocked.CompareExchange(ref _templateState, 1, 0) == 0)
        {
            CopyTree(_cache, Template);
            Volatile.Write(ref _templateState, 2);
        }
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
