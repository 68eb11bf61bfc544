using System.Text.Json.Nodes;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>A hand-made Llama-2-style tokenizer.json (▁ for spaces, BPE merges, &lt;0xXX&gt; byte fallback).</summary>
public sealed class SentencePieceTokenizerTests : IDisposable
{
    private readonly string _dir = TestDirectories.Create("sp-tokenizer");
    private readonly HfTokenizer _tokenizer;

    public SentencePieceTokenizerTests()
    {
        TinySentencePiece.Write(_dir);
        _tokenizer = HfTokenizer.Load(_dir);
    }

    [Fact]
    public void Load_MetaspaceStyle_IsSentencePieceKind() => Assert.Equal(TokenizerKind.SentencePieceBpe, _tokenizer.Kind);

    [Fact]
    public void Encode_Words_MergesToWholePieces()
    {
        Assert.Equal(new[] { 1, 259 + 12, 259 + 17 }, _tokenizer.Encode("hello world"));
        Assert.Equal(new[] { 259 + 12, 259 + 17 }, _tokenizer.Encode("hello world", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_UnknownCharacter_FallsBackToUtf8Bytes()
    {
        var ids = _tokenizer.Encode("hello 😀", addSpecialTokens: false);
        Assert.Equal(new[] { 259 + 12, 259, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80 }, ids);
        Assert.Equal("hello 😀", _tokenizer.Decode(ids));
    }

    [Fact]
    public void IncrementalDetokenizer_ByteFallbackTokens_HoldsBackUntilCharacterComplete()
    {
        var detok = new IncrementalDetokenizer(_tokenizer);
        Assert.Equal(" hello", detok.Push(259 + 12));
        Assert.Equal(" ", detok.Push(259));
        Assert.Equal("", detok.Push(3 + 0xF0));
        Assert.Equal("", detok.Push(3 + 0x9F));
        Assert.Equal("", detok.Push(3 + 0x98));
        Assert.Equal("😀", detok.Push(3 + 0x80));
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
