using System.Diagnostics;

namespace Serving.Tools.Tests.Support;

/// <summary>Runs a built tool of this repository (<c>dotnet TOOL.dll args</c>) in a fresh process.</summary>
internal static class ToolProcess
{
    /// <summary>The built Serving.Bench assembly of the same configuration as these tests.</summary>
    public static string Bench => Built("bench/Serving.Bench", "Serving.Bench.dll");

    /// <summary>The built ModelGen assembly of the same configuration as these tests.</summary>
    public static string ModelGen => Built("tools/ModelGen", "ModelGen.dll");

    /// <summary>Runs <paramref name="assembly"/> with <paramref name="args"/>; the cache folders point at <paramref name="cacheHome"/>.</summary>
    public static (int ExitCode, string Output) Run(string assembly, string cacheHome, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cacheHome };
        start.ArgumentList.Add(assembly);
        foreach (string a in args)
            start.ArgumentList.Add(a);
        start.Environment["XDG_CACHE_HOME"] = cacheHome;
        start.Environment["HOME"] = cacheHome;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(assembly)} {string.Join(' ', args)} ran over 5 minutes");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    // tests/Tools.Tests/bin/<Configuration>/net10.0/ → the tool's bin/<Configuration>/net10.0/.
    private static string Built(string project, string file)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = output.Name, configuration = output.Parent!.Name;
        string root = output.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        string path = Path.Combine(root, project, "bin", configuration, framework, file);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built", path);
    }
}
