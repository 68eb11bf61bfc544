using Serving.Authoring.Synthetic;
using Serving.Tests.Shared;

namespace Serving.Authoring.Tests.Synthetic;

public sealed class SyntheticModelWriterTests : IDisposable
{
    private readonly string _dir = TestDirectories.Create("synthetic");

    [Fact]
    public void Write_SameSpec_SameBytes_DifferentSeed_DifferentWeights()
    {
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b"), c = Path.Combine(_dir, "c");
        SyntheticModelWriter.Write(a, new SyntheticModelSpec { Seed = 1 });
        SyntheticModelWriter.Write(b, new SyntheticModelSpec { Seed = 1 });
        SyntheticModelWriter.Write(c, new SyntheticModelSpec { Seed = 2 });
        foreach (string file in new[] { "model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json", "generation_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, file)), File.ReadAllBytes(Path.Combine(b, file)));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(c, "model.safetensors")));
    }

    [Fact]
    public void Write_TruncatedVocabulary_KeepsBpeConsistent()
    {
        SyntheticTokenizerWriter.Write(_dir, vocabSize: 1000);
        var tokenizer = Serving.Engine.Tokenization.HfTokenizer.Load(_dir);
        Assert.Equal(1000, tokenizer.VocabSize);
        const string text = "The quick brown fox jumps over the lazy dog. Ünïcödé 😀";
        var ids = tokenizer.Encode(text, addSpecialTokens: false);
        Assert.All(ids, id => Assert.InRange(id, 0, 996));
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
