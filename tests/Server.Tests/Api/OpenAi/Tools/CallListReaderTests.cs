using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class CallListReaderTests
{
    private static readonly Factory List = (output, ids) => new CallListReader(output, ids);

    [Fact]
    public void Read_ListOfCalls_EveryCallAnyWayItStreams() =>
        AssertStreamsAsWhole(List, "[{\"name\":\"a\",\"parameters\":{\"s\":\"}]\\\"\"}},{\"name\":\"b\",\"parameters\":{}}]",
            Message(null, ("a", "{\"s\":\"}]\\\"\"}"), ("b", "{}")));

    [Fact]
    public void Read_ListCutShort_TheCallsItCompleted() =>
        AssertStreamsAsWhole(List, "[{\"name\":\"a\",\"parameters\":{}},{\"name\":\"b\",\"para", Message(null, ("a", "{}")));

    [Fact]
    public void Read_CutBeforeAnyCall_TheTextAsContent() =>
        AssertStreamsAsWhole(List, "[{\"name\":\"a\",\"par", Message("[{\"name\":\"a\",\"par"));

    [Fact]
    public void Read_NamedFunction_TheWholeTextIsItsArgumentsAndStreams()
    {
        var tool = new FunctionTool("f", null);
        Factory named = (output, ids) => new NamedToolCallReader(output, ids, tool);
        AssertStreamsAsWhole(named, "{\"x\":1}", Message(null, ("f", "{\"x\":1}")));
    }
}
