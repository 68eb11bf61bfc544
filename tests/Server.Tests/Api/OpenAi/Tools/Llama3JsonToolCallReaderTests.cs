using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class Llama3JsonToolCallReaderTests
{
    private static readonly Factory Llama = (output, ids) => new Llama3JsonToolCallReader(output, ids);

    [Fact]
    public void Read_PythonTagThenCall_TheCallAnyWayItStreams() =>
        AssertStreamsAsWhole(Llama, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
            Message(null, ("get_weather", "{\"city\": \"Paris\"}")));

    [Fact]
    public void Read_BareObjectsSeparatedBySemicolons_EveryCall() =>
        AssertStreamsAsWhole(Llama, "\n{\"name\": \"a\", \"parameters\": {\"q\": \"x; y\"}}; {\"name\": \"b\", \"arguments\": {}}",
            Message(null, ("a", "{\"q\": \"x; y\"}"), ("b", "{}")));

    [Fact]
    public void Read_TextThatIsNotACall_AllContent()
    {
        AssertStreamsAsWhole(Llama, "The answer is {42}.", Message("The answer is {42}."));
        AssertStreamsAsWhole(Llama, "  <|py is not the tag", Message("  <|py is not the tag"));
    }

    [Fact]
    public void Read_ObjectWithoutAName_AllContent() =>
        AssertStreamsAsWhole(Llama, "{\"answer\": 42} and more", Message("{\"answer\": 42} and more"));

    [Fact]
    public void Read_TextAfterTheCalls_Content() =>
        AssertStreamsAsWhole(Llama, "{\"name\": \"a\", \"parameters\": {}} then text", Message("then text", ("a", "{}")));

    [Fact]
    public void Read_CallCutShort_StaysInTheContent() =>
        AssertStreamsAsWhole(Llama, "{\"name\": \"a\", \"param", Message("{\"name\": \"a\", \"param"));
}
