using Serving.Authoring.Synthetic;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Support;

/// <summary>The generator's full GPT-2 tokenizer.json (50,256 BPE tokens + 3 specials), loaded once.</summary>
public sealed class Gpt2TokenizerFixture : IDisposable
{
    public Gpt2TokenizerFixture()
    {
        Directory = TestDirectories.Create("gpt2-tokenizer");
        SyntheticTokenizerWriter.Write(Directory, vocabSize: null);
        Tokenizer = HfTokenizer.Load(Directory);
    }

    public string Directory { get; }
    internal HfTokenizer Tokenizer { get; }

    public void Dispose() => TestDirectories.Delete(Directory);
}
