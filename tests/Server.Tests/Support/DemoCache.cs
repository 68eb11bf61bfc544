using Serving.Authoring.Demo;

namespace Serving.Server.Tests.Support;

/// <summary>
/// The demo model and its demo adapters, trained, made once per test run and copied into the cache folder of every demo
/// server a test starts (<see cref="ServerProcess.StartAsync(string[])"/> with a new <c>--cache-dir</c> and no
/// <c>--model</c>). Without it every such server trains the three demo adapters itself (about 40 s of both cores), and
/// the test classes starting servers side by side trained them side by side, each slower for the others. The tests of a
/// first start (FirstStartTests) start from an empty folder and see the training.
/// </summary>
public static class DemoCache
{
    private static readonly string Template = TestDirectories.Path("demo-cache-template");
    private static readonly Lazy<Task> Made = new(() => Task.Run(Make));

    static DemoCache() => AppDomain.CurrentDomain.ProcessExit += (_, _) => TestDirectories.Delete(Template);

    /// <summary>Fills <paramref name="cache"/> (new or empty) with the demo model and its trained adapters.</summary>
    public static async Task CopyToAsync(string cache)
    {
        await Made.Value;
        Directory.CreateDirectory(cache);
        foreach (string dir in Directory.EnumerateDirectories(Template, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(cache, Path.GetRelativePath(Template, dir)));
        foreach (string file in Directory.EnumerateFiles(Template, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(cache, Path.GetRelativePath(Template, file)));
    }

    /// <summary>The new or empty <c>--cache-dir</c> of a demo server's arguments (no <c>--model</c>), else null.</summary>
    public static string? NewDemoCacheOf(IReadOnlyList<string> args)
    {
        int at = args.ToList().IndexOf("--cache-dir");
        if (at < 0 || at + 1 >= args.Count || args.Contains("--model"))
            return null;
        string cache = args[at + 1];
        return !Directory.Exists(cache) || !Directory.EnumerateFileSystemEntries(cache).Any() ? cache : null;
    }

    /// <summary>What a demo server makes in its cache before it serves the trained adapters, made here once.</summary>
    private static void Make()
    {
        string model = DemoModel.Ensure(Template, out _);
        string adapters = DemoAdapters.EnsureRandom(Template, model);
        DemoAdapterTraining.Run(model, adapters, [.. DemoAdapters.Missing(adapters).Select(m => m.Id)], (_, _, _, _, _) => { }, _ => { });
    }
}
