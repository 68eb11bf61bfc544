using System.Text;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>
/// <see cref="HfTokenizer.EncodeWithin"/> is <see cref="HfTokenizer.Encode"/> when the ids fit the bound and null exactly
/// when they do not, for a byte-level (GPT-2) and a SentencePiece tokenizer, on texts of words, runs, emoji and special tokens.
/// </summary>
public sealed class EncodeWithinTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>, IDisposable
{
    private readonly string _dir = TestDirectories.Create("sp-within");

    private static string RandomText(Random random, string special)
    {
        string[] parts = ["hello", " world", "  ", "😀", "aaaaaaaa", "é", "\n", special, "1234", " the", "xyzzy", "\t\t"];
        var text = new StringBuilder();
        int n = random.Next(0, 40);
        for (int i = 0; i < n; i++)
            text.Append(parts[random.Next(parts.Length)]);
        return text.ToString();
    }

    private static void AgreesWithEncode(HfTokenizer tokenizer, string special, int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < 200; i++)
        {
            string text = RandomText(random, special);
            bool addSpecial = random.Next(2) == 0;
            int[] all = tokenizer.Encode(text, addSpecial);
            foreach (int limit in new[] { 0, 1, all.Length - 1, all.Length, all.Length + 1, all.Length / 2, random.Next(0, 80) })
            {
                if (limit < 0)
                    continue;
                var within = tokenizer.EncodeWithin(text, addSpecial, limit);
                if (all.Length <= limit)
                    Assert.Equal(all, within);
                else
                    Assert.Null(within);
            }
        }
    }

    [Fact]
    public void EncodeWithin_ByteLevel_EncodeWhenItFitsElseNull() => AgreesWithEncode(gpt2.Tokenizer, "<|endoftext|>", 1);

    [Fact]
    public void EncodeWithin_SentencePiece_EncodeWhenItFitsElseNull()
    {
        TinySentencePiece.Write(_dir);
        AgreesWithEncode(HfTokenizer.Load(_dir), "</s>", 2);
    }

    [Fact]
    public void EncodeWithin_TextFarBeyondTheBound_Null()
    {
        Assert.Null(gpt2.Tokenizer.EncodeWithin(new string('a', 2_000_000), addSpecialTokens: false, 2048));
        Assert.Null(gpt2.Tokenizer.EncodeWithin(string.Concat(Enumerable.Repeat("hi ", 1_000_000)), addSpecialTokens: false, 2048));
    }

    [Fact]
    public void KeepsText_SplitThatRemovesDelimiters_False()
    {
        var pattern = TokenizerPattern.FromJson(System.Text.Json.Nodes.JsonNode.Parse("""{"String":" "}"""), "test", "pre_tokenizer");
        Assert.True(new TokenizerPreTokenizer.Split(pattern, SplitBehavior.Isolated, Invert: false).KeepsText);
        Assert.False(new TokenizerPreTokenizer.Sequence([new TokenizerPreTokenizer.Digits(false),
            new TokenizerPreTokenizer.Split(pattern, SplitBehavior.Removed, Invert: false)]).KeepsText);
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
