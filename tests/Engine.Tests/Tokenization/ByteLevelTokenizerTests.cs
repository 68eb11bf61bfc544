using Microsoft.ML.Tokenizers;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

public sealed class ByteLevelTokenizerTests(Gpt2TokenizerFixture fixture) : IClassFixture<Gpt2TokenizerFixture>
{
    public static readonly TheoryData<string> Multilingual = new()
    {
        "The quick brown fox jumps over the lazy dog.",
        "Grüße aus Köln — naïve café, ½ price!",
        "日本語のテキストと中文文本。",
        "مرحبا بالعالم",
        "नमस्ते दुनिया",
        "Emoji: 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
        "  leading spaces,\ttabs\nnewlines\r\n and trailing   ",
        "I'm sure they'll've done it; it's 2024-11-24 at 10:30.",
        "e\u0301 combining accent, ℌ𝔢𝔩𝔩𝔬 math letters",
        "code: for (int i = 0; i < n; i++) { x += a[i]; }",
    };

    private HfTokenizer Tokenizer => fixture.Tokenizer;

    [Theory]
    [InlineData("Hello world", new[] { 15496, 995 })]
    [InlineData("Hello, world!", new[] { 15496, 11, 995, 0 })]
    [InlineData("The quick brown fox", new[] { 464, 2068, 7586, 21831 })]
    [InlineData(" the", new[] { 262 })]
    [InlineData("<|endoftext|>", new[] { 50256 })]
    public void Encode_KnownStrings_GivesPublishedGpt2Ids(string text, int[] expected) =>
        Assert.Equal(expected, Tokenizer.Encode(text, addSpecialTokens: false));

    [Theory]
    [MemberData(nameof(Multilingual))]
    public void Encode_Multilingual_MatchesTiktokenGpt2(string text)
    {
        var oracle = TiktokenTokenizer.CreateForModel("gpt2");
        Assert.Equal(oracle.EncodeToIds(text).ToArray(), Tokenizer.Encode(text, addSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(Multilingual))]
    public void Decode_OfEncode_RoundTrips(string text) =>
        Assert.Equal(text, Tokenizer.Decode(Tokenizer.Encode(text, addSpecialTokens: false)));

    [Fact]
    public void Encode_SpecialTokensInText_AreSingleIds()
    {
        var ids = Tokenizer.Encode("<|im_start|>user\nhi<|im_end|>", addSpecialTokens: false);
        Assert.Equal(50257, ids[0]);
        Assert.Equal(50258, ids[^1]);
        Assert.Equal("user\nhi", Tokenizer.Decode(ids));
        Assert.Equal("<|im_start|>user\nhi<|im_end|>", Tokenizer.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Specials_FromTokenizerConfig_AreResolved()
    {
        Assert.Equal(50256, Tokenizer.Specials.BosId);
        Assert.Equal(50258, Tokenizer.Specials.EosId);
        Assert.False(Tokenizer.Specials.AddBos);
        Assert.Equal(50259, Tokenizer.VocabSize);
    }

    [Fact]
    public void IncrementalDetokenizer_EmojiSplitAcrossTokens_NeverEmitsBrokenUtf8()
    {
        const string text = "a😀b👨‍👩‍👧c日本";
        var ids = Tokenizer.Encode(text, addSpecialTokens: false);
        Assert.True(ids.Length > text.Length / 2);
        var detok = new IncrementalDetokenizer(Tokenizer);
        var pieces = ids.Select(detok.Push).Append(detok.Flush()).ToList();
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.All(pieces, p => Assert.False(p.Length > 0 && char.IsHighSurrogate(p[^1]), $"piece '{p}' ends inside a surrogate pair"));
        Assert.Equal(text, string.Concat(pieces));
        Assert.Contains(pieces, p => p.Length == 0);
    }
}
