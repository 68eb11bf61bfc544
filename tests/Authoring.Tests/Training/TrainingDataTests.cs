using Serving.Authoring.Training;
using Serving.Tests.Shared;

namespace Serving.Authoring.Tests.Training;

[Collection(TinyModelCollection.Name)]
public sealed class TrainingDataTests(TinyModelFixture fixture)
{
    [Fact]
    public void Read_Jsonl_PromptWithSpecialsCompletionWithEos()
    {
        string file = Path.Combine(TestDirectories.Create("jsonl"), "train.jsonl");
        File.WriteAllText(file, "{\"prompt\": \"reverse 12:\", \"completion\": \" 21\"}\n\n{\"prompt\": \"a\", \"completion\": \"b\"}\n");
        var tokenizer = fixture.Loaded.Tokenizer;

        var examples = TrainingData.Read(file, tokenizer, eosTokenId: 7);

        Assert.Equal(2, examples.Count);
        Assert.Equal(tokenizer.Encode("reverse 12:"), examples[0].Prompt);
        Assert.Equal([.. tokenizer.Encode(" 21", addSpecialTokens: false), 7], examples[0].Completion);
    }

    [Theory]
    [InlineData("{\"prompt\": \"a\"}")]
    [InlineData("not json")]
    [InlineData("{\"prompt\": 3, \"completion\": \"b\"}")]
    public void Read_BadLine_FormatExceptionNamingTheLine(string bad)
    {
        string file = Path.Combine(TestDirectories.Create("jsonl-bad"), "train.jsonl");
        File.WriteAllText(file, "{\"prompt\": \"a\", \"completion\": \"b\"}\n" + bad + "\n");

        var ex = Assert.Throws<FormatException>(() => TrainingData.Read(file, fixture.Loaded.Tokenizer, 7));

        Assert.Contains("train.jsonl:2", ex.Message);
    }
}
