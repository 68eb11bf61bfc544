using Serving.Server.Api.OpenAi;
using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class MistralToolCallReaderTests
{
    private static readonly Factory Mistral = (output, ids) => new MistralToolCallReader(output, ids);

    [Fact]
    public void Read_ListAfterTheMarker_EveryCallAnyWayItStreams() =>
        AssertStreamsAsWhole(Mistral, "Sure. [TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"s\": \"]}\"}}, {\"name\": \"b\", \"arguments\": {}}]",
            Message("Sure.", ("a", "{\"s\": \"]}\"}"), ("b", "{}")));

    [Fact]
    public void Push_ListElementPartWritten_CallAnnouncedAndItsArgumentsGrowAsWritten()
    {
        var output = new ChatOutput();
        var reader = new MistralToolCallReader(output, () => "call-0");
        var writer = new ChatOutputWriter(output, parallel: true);

        reader.Push("[TOOL_CALLS] [{\"name\": \"get_weather\", \"argu");
        Assert.Empty(output.Calls);
        reader.Push("ments\": {\"city\": \"Pa");
        var first = writer.NextDelta();
        reader.Push("ris\", \"days\": [1, 2]}}, {\"name\": \"get_time\", \"arguments\": {}}]");
        reader.Finish();
        var second = writer.NextDelta();

        Assert.Equal("get_weather", (string?)first["tool_calls"]![0]!["function"]!["name"]);
        Assert.Equal("{\"city\": \"Pa", (string?)first["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal("ris\", \"days\": [1, 2]}", (string?)second["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal(["{\"city\": \"Paris\", \"days\": [1, 2]}", "{}"], output.Calls.Select(c => c.Arguments.ToString()));
        Assert.Equal(0, output.Content.Length);
    }

    [Fact]
    public void Read_ListElementArgumentsCutShort_TheCallWithWhatWasWritten() =>
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"n\": [1", Message(null, ("a", "{\"n\": [1")));

    [Fact]
    public void Read_ListElementWithArgumentsAsAString_ReadWhole() =>
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": \"{\\\"n\\\":1}\"}]", Message(null, ("a", "{\"n\":1}")));

    [Fact]
    public void Read_NameArgsFormOfNewerTokenizers_EveryCall() =>
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}",
            Message(null, ("get_weather", "{\"city\": \"Paris\"}"), ("get_time", "{}")));

    [Fact]
    public void Read_NoMarker_AllContent() =>
        AssertStreamsAsWhole(Mistral, "No tools needed [TOOL] here.", Message("No tools needed [TOOL] here."));

    [Fact]
    public void Read_CallCutShortBeforeItsArguments_StaysInTheContentWithItsMarker()
    {
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS]get_wea", Message("[TOOL_CALLS]get_wea"));
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS]get_weather[ARGS] ", Message("[TOOL_CALLS]get_weather[ARGS] "));
    }

    [Fact]
    public void Read_ArgumentsCutShort_TheCallWithWhatWasWritten() =>
        AssertStreamsAsWhole(Mistral, "[TOOL_CALLS]get_weather[ARGS]{\"ci", Message(null, ("get_weather", "{\"ci")));

    [Fact]
    public void Push_ArgumentsPartWritten_CallAnnouncedAndItsArgumentsGrowAsWritten()
    {
        var output = new Serving.Server.Api.OpenAi.ChatOutput();
        var reader = new MistralToolCallReader(output, () => "abcdefghi");

        reader.Push("Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Par");
        string partial = output.Calls.Single().Arguments.ToString();
        reader.Push("is\", \"note\": \"}\"} done");
        reader.Finish();

        Assert.Equal("{\"city\": \"Par", partial);
        Assert.Equal("{\"city\": \"Paris\", \"note\": \"}\"}", output.Calls.Single().Arguments.ToString());
        Assert.Equal("Sure.done", output.Content.ToString());      // the space only separated the text from the call
    }

    [Fact]
    public void For_MistralParser_IdsOfNineLettersOrDigits()
    {
        var output = new ChatOutput();
        var reader = ToolCallParsers.For(new ToolChoice(ToolChoiceKind.Auto, [], null, true), "mistral", output)!;
        reader.Push("[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {}}]");
        reader.Finish();
        Assert.Equal(2, output.Calls.Count);
        Assert.All(output.Calls, c => Assert.Matches("^[A-Za-z0-9]{9}$", c.Id));
        Assert.NotEqual(output.Calls[0].Id, output.Calls[1].Id);
    }
}
