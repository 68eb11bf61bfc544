using System.Collections.Concurrent;
using Serving.Tests.Shared;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>The real checkpoints' tokenizers of the npm reference packages, each loaded once per test run (Gemma 3's is 33 MB).</summary>
internal static class ReferenceTokenizers
{
    private static readonly ConcurrentDictionary<string, Lazy<HfTokenizer>> Loaded = new(StringComparer.Ordinal);

    public static HfTokenizer Load(string package) => Loaded.GetOrAdd(package, p => new Lazy<HfTokenizer>(() =>
        HfTokenizer.Load(Path.GetDirectoryName(ReferencePaths.Package(p, "models/tokenizer.json"))!))).Value;
}
