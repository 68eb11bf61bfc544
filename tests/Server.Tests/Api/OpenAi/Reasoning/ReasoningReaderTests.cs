using System.Text;
using Serving.Server.Api.OpenAi.Reasoning;

namespace Serving.Server.Tests.Api.OpenAi.Reasoning;

public sealed class ReasoningReaderTests
{
    private static (string Reasoning, string Content) Read(string text, bool startsInReasoning, IEnumerable<int> cuts)
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        var reader = new ReasoningReader(reasoning, t => content.Append(t), startsInReasoning);
        int from = 0;
        foreach (int cut in cuts.Where(c => c > 0 && c < text.Length).Distinct().Order().Append(text.Length))
        {
            reader.Push(text[from..cut]);
            from = cut;
        }

        reader.Finish();
        return (reasoning.ToString(), content.ToString());
    }

    /// <summary>Read whole, cut once anywhere, and a character at a time: the same split every way.</summary>
    private static void AssertSplit(string text, bool startsInReasoning, string reasoning, string content)
    {
        Assert.Equal((reasoning, content), Read(text, startsInReasoning, []));
        for (int cut = 1; cut < text.Length; cut++)
            Assert.Equal((reasoning, content), Read(text, startsInReasoning, [cut]));
        Assert.Equal((reasoning, content), Read(text, startsInReasoning, Enumerable.Range(1, text.Length)));
    }

    [Fact]
    public void Read_ThinkBlockThenAnswer_ReasoningAndTheAnswerWithoutTheSeparator() =>
        AssertSplit("<think>\nTwo and two.\n</think>\n\nThe answer is 4.", false, "\nTwo and two.\n", "The answer is 4.");

    [Fact]
    public void Read_BlockOpenedByTheTemplate_ReasoningUntilTheEndTag() =>
        AssertSplit("Hmm, < and </thin are not the tag.</think>Answer", true, "Hmm, < and </thin are not the tag.", "Answer");

    [Fact]
    public void Read_NoEndTag_AllReasoningWhenTheTextStartsInIt() =>
        AssertSplit("Still thinking when max_tokens came", true, "Still thinking when max_tokens came", "");

    [Fact]
    public void Read_NoTagAndNotStartingInReasoning_AllContent()
    {
        AssertSplit("  Plain answer </think> kept", false, "", "  Plain answer </think> kept");
        AssertSplit("<thin", false, "", "<thin");
    }

    [Fact]
    public void Read_WhitespaceBeforeTheOpeningTag_Dropped() =>
        AssertSplit("\n <think>why</think>so", false, "why", "so");
}
