using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>
/// <see cref="HfTokenizer.EncodeKeepingLast"/> is transformers' left truncation: the special tokens the tokenizer adds
/// stay (a SentencePiece tokenizer's BOS), and of the text's own tokens the last that fit beside them.
/// </summary>
public sealed class EncodeKeepingLastTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>, IDisposable
{
    private readonly string _dir = TestDirectories.Create("sp-keep-last");

    [Fact]
    public void EncodeKeepingLast_SentencePieceWithBos_BosThenTheTextsLastTokens()
    {
        TinySentencePiece.Write(_dir);
        var tokenizer = HfTokenizer.Load(_dir);
        const string text = "hello world the xyzzy hello world 1234 the end";
        int[] content = tokenizer.Encode(text, addSpecialTokens: false);
        int bos = tokenizer.Specials.BosId!.Value;
        Assert.True(tokenizer.Specials.AddBos && content.Length > 6);

        for (int keep = 1; keep <= content.Length + 3; keep++)
        {
            var kept = tokenizer.EncodeKeepingLast(text, addSpecialTokens: true, keep, int.MaxValue, out int textTokens);
            Assert.Equal([bos, .. content[Math.Max(0, content.Length - (keep - 1))..]], kept!);
            Assert.Equal(content.Length, textTokens);
            Assert.Equal(content[Math.Max(0, content.Length - keep)..], tokenizer.EncodeKeepingLast(text, addSpecialTokens: false, keep, int.MaxValue, out _));
        }

        Assert.Equal(tokenizer.Encode(text), tokenizer.EncodeKeepingLast(text, addSpecialTokens: true, content.Length + 1, int.MaxValue, out _));
    }

    [Fact]
    public void EncodeKeepingLast_TextBeyondTheBound_NullWithoutTokenizingItWhole()
    {
        string text = string.Concat(Enumerable.Repeat("hi there ", 200_000));

        Assert.Null(gpt2.Tokenizer.EncodeKeepingLast(text, addSpecialTokens: false, 10, 4096, out _));
        Assert.Equal(gpt2.Tokenizer.Encode("hi there hi there hi there", false)[^4..],
            gpt2.Tokenizer.EncodeKeepingLast("hi there hi there hi there", addSpecialTokens: true, 4, 4096, out _));
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
