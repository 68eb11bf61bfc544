using Serving.Server.Api.OpenAi;
using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

/// <summary>IBM Granite 3's calls (<c>--tool-call-parser granite</c>): a JSON list after <c>&lt;|tool_call|&gt;</c>.</summary>
public sealed class GraniteToolCallReaderTests
{
    private static readonly Factory Granite = (output, ids) => new MistralToolCallReader(output, ids, MistralToolCallReader.GraniteMarker);

    [Fact]
    public void Read_ListAfterTheMarker_EveryCallAnyWayItStreams() =>
        AssertStreamsAsWhole(Granite, "Let me check.<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Boston\"}}, {\"name\": \"now\", \"arguments\": {}}]",
            Message("Let me check.", ("get_weather", "{\"city\": \"Boston\"}"), ("now", "{}")));

    [Fact]
    public void Read_MistralsMarker_IsContent() =>
        AssertStreamsAsWhole(Granite, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}]", Message("[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}]"));

    [Fact]
    public void Read_CallCutShort_TheCallWithWhatWasWritten() =>
        AssertStreamsAsWhole(Granite, "<|tool_call|>[{\"name\": \"a\", \"arguments\": {\"n\": [1", Message(null, ("a", "{\"n\": [1")));

    [Fact]
    public void For_GraniteParser_TheListReaderWithGranitesMarkerAndSpecialTokensShown()
    {
        var output = new ChatOutput();
        var reader = ToolCallParsers.For(new ToolChoice(ToolChoiceKind.Auto, [], null, true), "granite", output)!;

        reader.Push("<|tool_call|>[{\"name\": \"a\", \"arguments\": {}}]");
        reader.Finish();

        Assert.Equal("a", Assert.Single(output.Calls).Name);
        Assert.True(ToolCallParsers.ShowsSpecialTokens("granite"));
    }
}
