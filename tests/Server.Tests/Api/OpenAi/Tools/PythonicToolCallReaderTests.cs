using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

public sealed class PythonicToolCallReaderTests
{
    private static readonly Factory Pythonic = (output, ids) => new PythonicToolCallReader(output, ids);

    [Fact]
    public void Read_ListOfCalls_ArgumentsAsJsonAnyWayItStreams() =>
        AssertStreamsAsWhole(Pythonic, "[get_weather(city=\"Paris\", days=3), now()]",
            Message(null, ("get_weather", "{\"city\":\"Paris\",\"days\":3}"), ("now", "{}")));

    [Fact]
    public void Read_Llama4TagsAndEveryLiteral_JsonValues() =>
        AssertStreamsAsWhole(Pythonic, "<|python_start|>[f(a=[1, -2.5e3, None, True, (False,)], b={'k': 'v', \"é\": {}}, c='x]\\'y\"\\n')]<|python_end|>",
            Message(null, ("f", "{\"a\":[1,-2500,null,true,[false]],\"b\":{\"k\":\"v\",\"é\":{}},\"c\":\"x]'y\\\"\\n\"}")));

    [Fact]
    public void Read_TextAfterTheList_Content() =>
        AssertStreamsAsWhole(Pythonic, "[ping()]\nDone.", Message("Done.", ("ping", "{}")));

    [Theory]
    [InlineData("The answer is [1, 2].")]
    [InlineData("[1, 2, 3]")]
    [InlineData("[f(\"positional\")]")]
    [InlineData("[f(x=1 + 2)]")]
    [InlineData("[f(x=open('/etc/passwd'))]")]
    [InlineData("[f(a=")]
    [InlineData("[]")]
    public void Read_NotAListOfCalls_AllContent(string text) => AssertStreamsAsWhole(Pythonic, text, Message(text));
}
