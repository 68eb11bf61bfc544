namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// A call forced to one named function (<see cref="ToolChoiceKind.Named"/>): the whole text is its arguments, already
/// held to the function's schema by the constraint, so it streams as it comes.
/// </summary>
internal sealed class NamedToolCallReader : ToolCallReader
{
    private readonly ToolCall _call;

    public NamedToolCallReader(ChatOutput output, Func<string> newId, FunctionTool function) : base(output, newId)
    {
        _call = new ToolCall(newId(), function.Name);
        output.Calls.Add(_call);
    }

    protected override void Drain(bool final)
    {
        _call.Arguments.Append(Pending);
        Pending = "";
    }
}
