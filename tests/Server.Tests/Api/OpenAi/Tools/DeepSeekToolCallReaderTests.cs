using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class DeepSeekToolCallReaderTests
{
    private static readonly Factory DeepSeek = (output, ids) => new DeepSeekToolCallReader(output, ids);

    [Fact]
    public void Read_V3FencedCalls_EveryCallAnyWayItStreams() =>
        AssertStreamsAsWhole(DeepSeek,
            "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n"
            + "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            Message("Checking.", ("get_weather", "{\"city\": \"Paris\"}"), ("get_time", "{}")));

    [Fact]
    public void Read_V31Calls_EveryCallAnyWayItStreams() =>
        AssertStreamsAsWhole(DeepSeek,
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Oslo\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜> Done.",
            Message("Done.", ("get_weather", "{\"city\": \"Oslo\"}")));

    [Fact]
    public void Read_NoBlock_AllContent() =>
        AssertStreamsAsWhole(DeepSeek, "No calls <｜tool here.", Message("No calls <｜tool here."));

    [Fact]
    public void Read_StreamedCallCutShort_TheCallWithWhatWasWritten() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"ci",
            Message(null, ("get_weather", "{\"ci")));

    [Fact]
    public void Read_CallCutShortBeforeItsArguments_StaysInTheContentWithItsMarkers() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁s",
            Message("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁s"));

    [Fact]
    public void Read_ArgumentsUnclosedAtTheEndMarker_TheCallEndsThere() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{oops<｜tool▁call▁end｜><｜tool▁calls▁end｜>ok",
            Message("ok", ("f", "{oops")));

    [Fact]
    public void Read_ArgumentsNotAnObjectNorJson_TheCallStaysInTheContent() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>oops<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            Message("<｜tool▁call▁begin｜>f<｜tool▁sep｜>oops<｜tool▁call▁end｜>"));

    [Theory]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n", "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>", "<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    public void Push_ArgumentsPartWritten_CallAnnouncedAndItsArgumentsGrowAsWritten(string opening, string closing)
    {
        var output = new Serving.Server.Api.OpenAi.ChatOutput();
        var reader = new DeepSeekToolCallReader(output, () => "call-0");
        var writer = new Serving.Server.Api.OpenAi.ChatOutputWriter(output, parallel: true);

        reader.Push("Checking." + opening[..^3]);
        Assert.Empty(output.Calls);
        reader.Push(opening[^3..] + "{\"city\": \"Pa");
        var first = writer.NextDelta();
        reader.Push("ris\", \"days\": [1, 2]}" + closing[..5]);
        var second = writer.NextDelta();
        reader.Push(closing[5..] + " Done.");
        reader.Finish();

        Assert.Equal("Checking.", (string?)first["content"]);
        Assert.Equal("get_weather", (string?)first["tool_calls"]![0]!["function"]!["name"]);
        Assert.Equal("{\"city\": \"Pa", (string?)first["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal("ris\", \"days\": [1, 2]}", (string?)second["tool_calls"]![0]!["function"]!["arguments"]);
        Assert.Equal("{\"city\": \"Paris\", \"days\": [1, 2]}", output.Calls.Single().Arguments.ToString());
        Assert.Equal("Checking.Done.", output.Content.ToString().Replace(" ", ""));
    }
}
