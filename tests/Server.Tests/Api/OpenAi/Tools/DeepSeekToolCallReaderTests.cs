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
    public void Read_CallCutShort_StaysInTheContentWithItsMarkers() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"ci",
            Message("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"ci"));

    [Fact]
    public void Read_ArgumentsNotJson_TheCallStaysInTheContent() =>
        AssertStreamsAsWhole(DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{oops<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            Message("<｜tool▁call▁begin｜>f<｜tool▁sep｜>{oops<｜tool▁call▁end｜>"));
}
