using System.Diagnostics;
using System.Text.Json.Nodes;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// Measures peak resident memory while loading, in a fresh process so nothing else inflates the peak:
/// the child initialises libtorch, resets the peak counter, loads, and reports VmHWM.
/// </summary>
internal static class LoadMemoryProbe
{
    /// <summary>Child side: load and print one JSON line.</summary>
    public static int RunChild(string modelDir, string dtype)
    {
        using (var warm = ones(4, 4))
            warm.matmul(warm).Dispose();
        GC.Collect();
        long baseline = ProcessMemory.CurrentRssBytes();
        bool reset = ProcessMemory.ResetPeak();
        var started = Stopwatch.StartNew();
        using var model = LoadedModel.Load(modelDir, TorchRuntime.ResolveDtype(TorchRuntime.ParseDtype(dtype), CPU), CPU, 4096);
        double seconds = started.Elapsed.TotalSeconds;
        long peak = ProcessMemory.PeakRssBytes();
        Console.WriteLine(new JsonObject
        {
            ["weight_bytes"] = model.Model.Weights.TotalBytes,
            ["baseline_rss"] = baseline,
            ["peak_rss"] = peak,
            ["peak_reset"] = reset,
            ["seconds"] = seconds,
        }.ToJsonString());
        return 0;
    }

    /// <summary>Parent side: runs this program's <c>load</c> command and parses its line.</summary>
    public static JsonObject Measure(string modelDir, string dtype)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            psi.ArgumentList.Add(typeof(LoadMemoryProbe).Assembly.Location);
        foreach (string a in new[] { "load", "--model", modelDir, "--dtype", dtype })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"load probe exited with {process.ExitCode}: {output}");
        return (JsonNode.Parse(output.Trim().Split('\n')[^1]) as JsonObject)!;
    }
}
