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

    [Fact]
    public void Push_ParametersPartWritten_CallAnnouncedAndItsArgumentsGrowAsWritten()
    {
        var output = new Serving.Server.Api.OpenAi.ChatOutput();
        var reader = new Llama3JsonToolCallReader(output, () => "call-0");

        reader.Push("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa");
        string partial = output.Calls.Single().Arguments.ToString();
        reader.Push("ris\"}}; {\"name\": \"b\", \"parameters\": {\"n\": [1, \"}\"]}, \"x\": \"}\"} then");
        reader.Finish();

        Assert.Equal("{\"city\": \"Pa", partial);
        Assert.Equal(["get_weather", "b"], output.Calls.Select(c => c.Name));
        Assert.Equal(["{\"city\": \"Paris\"}", "{\"n\": [1, \"}\"]}"], output.Calls.Select(c => c.Arguments.ToString()));
        Assert.Equal("then", output.Content.ToString());
    }

    [Fact]
    public void Read_StreamedParametersNeverClosed_TheCallWithWhatWasWritten() =>
        AssertStreamsAsWhole(Llama, "{\"name\": \"f\", \"parameters\": {\"q\": \"abc", Message(null, ("f", "{\"q\": \"abc")));
}
