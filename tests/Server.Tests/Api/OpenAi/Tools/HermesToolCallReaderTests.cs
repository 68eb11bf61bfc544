using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class HermesToolCallReaderTests
{
    private static readonly Factory Hermes = (output, ids) => new HermesToolCallReader(output, ids);

    [Fact]
    public void Read_TextThenCall_ContentAndCallAnyWayItStreams()
    {
        const string text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        AssertStreamsAsWhole(Hermes, text, Message("Let me check.", ("get_weather", "{\"city\": \"Paris\"}")));
    }

    [Fact]
    public void Read_TwoCalls_BothInOrderWithoutTheWhitespaceBetween()
    {
        const string text = "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, \"}\"]}}\n</tool_call>\n";
        AssertStreamsAsWhole(Hermes, text, Message(null, ("a", "{}"), ("b", "{\"x\": [1, \"}\"]}")));
    }

    [Fact]
    public void Read_NoCall_TextUnchangedIncludingItsSpaces()
    {
        const string text = "  Plain answer with a < sign and <tool_ but no call.\n\n";
        AssertStreamsAsWhole(Hermes, text, Message(text));
    }

    [Fact]
    public void Read_CallWithInvalidJson_StaysInTheContentAsWritten()
    {
        const string text = "Hi <tool_call>{\"name\": oops}</tool_call> bye";
        AssertStreamsAsWhole(Hermes, text, Message(text));
    }

    [Fact]
    public void Read_CallLeftOpenAtTheEnd_ReadWhenItsJsonIsWhole()
    {
        AssertStreamsAsWhole(Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {\"n\": 1}}", Message(null, ("f", "{\"n\": 1}")));
        AssertStreamsAsWhole(Hermes, "<tool_call>{\"name\": \"f\", \"argu", Message("<tool_call>{\"name\": \"f\", \"argu"));
    }

    [Fact]
    public void Read_ArgumentsWrittenAsAJsonString_TheTextItHolds()
    {
        Assert.Equal(Message(null, ("f", "{\"n\":1}")).ToJsonString(),
            Whole(Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"n\\\":1}\"}</tool_call>").ToJsonString());
    }

    [Fact]
    public void Read_NoArguments_AnEmptyObject() =>
        Assert.Equal(Message(null, ("f", "{}")).ToJsonString(), Whole(Hermes, "<tool_call>{\"name\": \"f\"}</tool_call>").ToJsonString());

    [Fact]
    public void Read_TextAfterACall_KeptAsContent()
    {
        const string text = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n\nDone.";
        AssertStreamsAsWhole(Hermes, text, Message("Done.", ("f", "{}")));
    }

    [Fact]
    public void Push_ArgumentsPartWritten_CallAnnouncedAndItsArgumentsGrowAsWritten()
    {
        var output = new Serving.Server.Api.OpenAi.ChatOutput();
        var reader = new HermesToolCallReader(output, () => "call-0");
        var writer = new Serving.Server.Api.OpenAi.ChatOutputWriter(output, parallel: true);

        reader.Push("Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"argu");
        Assert.Empty(output.Calls);
        reader.Push("ments\": {\"city\": \"Pa");
        var first = writer.NextDelta();
        reader.Push("ris\", \"days\": [1, 2]}}\n</tool_call>");
        var second = writer.NextDelta();
        reader.Finish();

        Assert.Equal("Checking.", (string?)first["content"]);
        Assert.Equal("get_weather", (string?)first["tool_calls"]![0]!["function"]!["name"]);
        Assert.Equal("{\"city\": \"Pa", (string?)first["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal("ris\", \"days\": [1, 2]}", (string?)second["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Null(second["tool_calls"]![0]!["function"]!["name"]);
        Assert.Equal("{\"city\": \"Paris\", \"days\": [1, 2]}", output.Calls.Single().Arguments.ToString());
    }

    [Fact]
    public void Read_EndMarkerInsideAnArgumentString_PartOfTheArguments()
    {
        const string text = "<tool_call>{\"name\": \"echo\", \"arguments\": {\"text\": \"say </tool_call> {\"}}</tool_call>after";
        AssertStreamsAsWhole(Hermes, text, Message("after", ("echo", "{\"text\": \"say </tool_call> {\"}")));
    }

    [Fact]
    public void Read_StreamedArgumentsNeverClosed_TheCallWithWhatWasWritten()
    {
        AssertStreamsAsWhole(Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {\"n\": [1, 2", Message(null, ("f", "{\"n\": [1, 2")));
    }

    [Fact]
    public void Message_WithoutParallelCalls_OnlyTheFirstCall()
    {
        const string text = "<tool_call>{\"name\": \"a\"}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>";
        Assert.Equal(Message(null, ("a", "{}")).ToJsonString(), Whole(Hermes, text, parallel: false).ToJsonString());
        Assert.Equal(Message(null, ("a", "{}")).ToJsonString(), Streamed(Hermes, text, Enumerable.Range(1, text.Length), parallel: false).ToJsonString());
    }
}
