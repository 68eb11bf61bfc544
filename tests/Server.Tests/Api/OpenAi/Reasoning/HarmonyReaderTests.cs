using Serving.Server.Api.OpenAi;
using Serving.Server.Api.OpenAi.Reasoning;

namespace Serving.Server.Tests.Api.OpenAi.Reasoning;

public sealed class HarmonyReaderTests
{
    private static (string Reasoning, string Content, string Calls) Read(string text, bool readsCalls, IEnumerable<int> cuts)
    {
        var output = new ChatOutput();
        int ids = 0;
        var reader = new HarmonyReader(output, readsCalls, () => $"call-{ids++}");
        int from = 0;
        foreach (int cut in cuts.Where(c => c > 0 && c < text.Length).Distinct().Order().Append(text.Length))
        {
            reader.Push(text[from..cut]);
            from = cut;
        }

        reader.Finish();
        return (output.Reasoning.ToString(), output.Content.ToString(), string.Join("|", output.Calls.Select(c => $"{c.Id}:{c.Name}:{c.Arguments}")));
    }

    /// <summary>Read whole, cut once anywhere, and a character at a time: the same message every way.</summary>
    private static void AssertRead(string text, bool readsCalls, string reasoning, string content, string calls = "")
    {
        Assert.Equal((reasoning, content, calls), Read(text, readsCalls, []));
        for (int cut = 1; cut < text.Length; cut++)
            Assert.Equal((reasoning, content, calls), Read(text, readsCalls, [cut]));
        Assert.Equal((reasoning, content, calls), Read(text, readsCalls, Enumerable.Range(1, text.Length)));
    }

    [Fact]
    public void Read_AnalysisThenFinal_ReasoningAndTheAnswer() =>
        AssertRead("<|channel|>analysis<|message|>User greets. Reply.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>",
            true, "User greets. Reply.", "Hello! How can I help?");

    [Fact]
    public void Read_AnalysisThenCall_ReasoningAndTheCallWithItsArguments() =>
        AssertRead("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>",
            true, "Need weather.", "", "call-0:get_weather:{\"city\":\"Paris\"}");

    /// <summary>The recipient may come before the channel (after the role), and two calls may follow each other.</summary>
    [Fact]
    public void Read_RecipientBeforeTheChannelAndTwoCalls_BothCalls() =>
        AssertRead(" to=functions.add<|channel|>commentary json<|message|>{\"a\":1}<|call|><|start|>assistant to=functions.add<|channel|>commentary json<|message|>{\"a\":2}<|call|>",
            true, "", "", "call-0:add:{\"a\":1}|call-1:add:{\"a\":2}");

    /// <summary>A call where the request gave no function to call, or to a built-in tool this server does not run: reasoning, not content.</summary>
    [Fact]
    public void Read_CallNotReadOrToABuiltInTool_Reasoning()
    {
        AssertRead("<|channel|>commentary to=functions.get_weather<|message|>{}<|call|>", false, "{}", "");
        AssertRead("<|channel|>analysis to=browser.search<|message|>{\"query\":\"x\"}<|call|>", true, "{\"query\":\"x\"}", "");
    }

    /// <summary>A preamble on the commentary channel is for the user; the end markers' look-alikes inside a body are text.</summary>
    [Fact]
    public void Read_CommentaryPreambleAndMarkerLookAlikes_Content() =>
        AssertRead("<|channel|>commentary<|message|>Checking <|en now.<|end|><|start|>assistant<|channel|>final<|message|>Done <|ret<|return|>",
            true, "", "Checking <|en now.Done <|ret");

    /// <summary>An answer cut short (max_tokens) keeps what was said; a header cut short says nothing.</summary>
    [Fact]
    public void Read_CutShort_WhatWasSaid()
    {
        AssertRead("<|channel|>analysis<|message|>Still think", true, "Still think", "");
        AssertRead("<|channel|>analysis<|message|>Done.<|end|><|start|>assistant<|channel|>fin", true, "Done.", "");
    }

    /// <summary>A text held by an output format from its first token has no header: all content, as written.</summary>
    [Fact]
    public void Read_NoHeader_AllContent()
    {
        AssertRead("{\"answer\": 4}", true, "", "{\"answer\": 4}");
        AssertRead("<|chan", true, "", "<|chan");
    }
}
