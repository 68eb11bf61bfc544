using System.Diagnostics;
using System.Text;
using Serving.Engine.Tokenization;

namespace Serving.Bench;

/// <summary>
/// How long a long prompt (32,000 characters of prose, code, digits and several scripts) takes to tokenize with real
/// checkpoints' tokenizer files: the first encode of a fresh tokenizer (its word cache empty) and the median of 20 warm
/// ones after 40 more (the JIT's tiered compilation done). Tokenization runs on the request's thread, off the engine step, so this is latency added before admission.
/// </summary>
internal sealed class TokenizerBenchmark(IReadOnlyList<string> folders, int characters)
{
    public BenchReport Run()
    {
        string text = Text(characters);
        var report = new BenchReport($"Tokenizing a {characters:N0}-character prompt", folders.Select(f => Path.GetFileName(Path.GetDirectoryName(f)) ?? f).ToArray());
        report.Context("characters", characters);
        var rows = folders.Select(folder => Measure(folder, text)).ToList();
        report.Add("tokens", "count", rows.Select(r => (double?)r.Tokens).ToArray());
        report.Add("first encode (fresh tokenizer)", "ms", rows.Select(r => (double?)r.ColdMs).ToArray());
        report.Add("warm encode, median of 20", "ms", rows.Select(r => (double?)r.WarmMs).ToArray());
        report.Add("warm throughput", "chars/ms", rows.Select(r => (double?)(characters / r.WarmMs)).ToArray());
        return report;
    }

    /// <summary>The folder holding Serving.sln, above the working directory or the assembly.</summary>
    public static string RepositoryRoot()
    {
        foreach (string start in (string[])[Environment.CurrentDirectory, AppContext.BaseDirectory])
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                    return dir.FullName;
        throw new DirectoryNotFoundException("Serving.sln not found above the working directory; pass --tokenizers");
    }

    private static (int Tokens, double ColdMs, double WarmMs) Measure(string folder, string text)
    {
        var tokenizer = HfTokenizer.Load(folder);
        var clock = Stopwatch.StartNew();
        int tokens = tokenizer.Encode(text).Length;
        double cold = clock.Elapsed.TotalMilliseconds;
        // A server tokenizes thousands of prompts: measure after the JIT has tiered the path up (30 calls and a pause
        // for the background compile), not while it is still running tier-0 code.
        for (int i = 0; i < 40; i++)
            tokenizer.Encode(text);
        Thread.Sleep(200);
        var warm = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            clock.Restart();
            tokenizer.Encode(text);
            warm.Add(clock.Elapsed.TotalMilliseconds);
        }

        warm.Sort();
        return (tokens, cold, warm[warm.Count / 2]);
    }

    private static string Text(int characters)
    {
        string[] pieces =
        [
            "The quick brown fox jumps over the lazy dog while the scheduler admits another request. ",
            "def tokenize(text: str) -> list[int]:\n    return [ord(c) for c in text if not c.isspace()]\n\n",
            "Tiếng Việt có nhiều dấu; 中文文本也很常见；日本語のテキスト、한국어 텍스트, русский текст, العربية. ",
            "Invoice 2024-12-02 #00042: 3 × 19.99 = 59.97 EUR, ref 1234567890. ",
            "Emoji 👩🏾‍💻 and 𝟏𝟐𝟑 math digits, tabs\tand\r\nline breaks.  ",
        ];
        var sb = new StringBuilder(characters + 200);
        for (int i = 0; sb.Length < characters; i++)
            sb.Append(pieces[i % pieces.Length]);
        return sb.ToString(0, characters);
    }
}
